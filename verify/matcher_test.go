package verify

import "testing"

func TestMatch(t *testing.T) {
	eq := func(v any) *Matcher { return &Matcher{Op: opEqual, Value: v} }
	op := func(o string, v any, args ...*Matcher) *Matcher { return &Matcher{Op: o, Value: v, Args: args} }
	pats := func(p ...string) *Matcher { return &Matcher{Op: opPatterns, Patterns: p} }
	tests := []struct {
		name    string
		m       *Matcher
		found   any
		want    bool
		wantErr bool
	}{
		{"bool equal", eq(true), true, true, false},
		{"bool differs", eq(true), false, false, false},
		{"bool vs string", eq(true), "true", false, true},
		{"number vs int", eq(33.0), 33, true, false},
		{"number vs numeric string", eq(128.0), "128\n", true, false},
		{"number vs text", eq(1.0), "abc", false, true},
		{"string vs int", eq("0"), 0, true, false},
		{"string equal", eq("0644"), "0644", true, false},
		{"string differs", eq("0644"), "0600", false, false},
		{"string vs list", eq("a\nb"), []string{"a", "b"}, true, false},
		{"patterns all there", pats("foo", "!bar", "/^b.z$/"), "foo\nbaz\n", true, false},
		{"pattern missing", pats("foo", "qux"), "foo\n", false, false},
		{"inverse pattern present", pats("!foo"), "a foo b", false, false},
		{"escaped bang", pats(`\!x`), "say !x", true, false},
		{"no patterns", pats(), "", true, false},
		{"inverse regexp", pats("!/^root:/"), "daemon:x\nroot:x", false, false},
		{"prefix", op(opHavePrefix, "ro"), "root", true, false},
		{"suffix", op(opHaveSuffix, "ot"), "root", true, false},
		{"substring", op(opContainSubstring, "oo"), "root", true, false},
		{"regexp", op(opMatchRegexp, `^\d+$`), "123", true, false},
		{"gt", op(opGT, 50.0), 51, true, false},
		{"gt equal", op(opGT, 50.0), 50, false, false},
		{"ge", op(opGE, 50.0), 50, true, false},
		{"lt string", op(opLT, 95.0), "94.5", true, false},
		{"le", op(opLE, 1.0), 2, false, false},
		{"have-len list", op(opHaveLen, 2.0), []string{"a", "b"}, true, false},
		{"have-len bool", op(opHaveLen, 2.0), true, false, true},
		{"not", op(opNot, nil, eq("a")), "b", true, false},
		{"not keeps errors", op(opNot, nil, eq(1.0)), "x", false, true},
		{"and", op(opAnd, nil, op(opGT, 1.0), op(opLT, 5.0)), 3, true, false},
		{"and fails", op(opAnd, nil, op(opGT, 1.0), op(opLT, 2.0)), 3, false, false},
		{"or", op(opOr, nil, eq("a"), eq("b")), "b", true, false},
		{"or none", op(opOr, nil, eq("a"), eq("b")), "c", false, false},
		{"contain-element", op(opContainElement, nil, op(opHavePrefix, "172.")), []string{"10.0.0.1", "172.17.0.2"}, true, false},
		{"contain-element of lines", op(opContainElement, nil, eq("b")), "a\nb\n", true, false},
		{"contain-elements subset", op(opContainElements, nil, eq("a"), eq("c")), []string{"a", "b", "c"}, true, false},
		{"contain-elements missing", op(opContainElements, nil, eq("a"), eq("d")), []string{"a", "b"}, false, false},
		{"contain-elements needs distinct elements", op(opContainElements, nil, eq("root"), eq("root")), []string{"root"}, false, false},
		{"contain-elements empty", op(opContainElements, nil), []string{}, true, false},
		{"consist-of any order", op(opConsistOf, nil, eq("b"), op(opHavePrefix, "a")), []string{"ab", "b"}, true, false},
		{"consist-of extra element", op(opConsistOf, nil, eq("a")), []string{"a", "b"}, false, false},
		{"consist-of needs assignment", op(opConsistOf, nil, op(opHavePrefix, "a"), eq("ab")), []string{"ab", "ac"}, true, false},
		{"equal-elements order", op(opEqualElements, nil, eq("a"), eq("b")), []string{"b", "a"}, false, false},
		{"equal-elements", op(opEqualElements, nil, eq("a"), eq("b")), []string{"a", "b"}, true, false},
		{"numbers in elements", op(opContainElement, nil, eq(2.0)), []string{"1", "2"}, true, false},
		{"unknown op", op("frobnicate", nil), "x", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.m.Match(tt.found)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Match(%v) error = %v, want error %v", tt.found, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("Match(%v) = %v, want %v", tt.found, got, tt.want)
			}
		})
	}
}

func TestMatcherString(t *testing.T) {
	s, err := Parse("t.yaml", []byte(`
user:
  u:
    exists: true
    uid: {and: [{gt: 50}, {lt: 100}]}
    groups: [a, {have-prefix: b}]
    home: {not: {equal: /root}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"true", "(> 50 and < 100)", `[a, have-prefix "b"]`, "not(/root)"}
	for i, c := range s.Resources[0].Checks {
		if got := c.Expect.String(); got != want[i] {
			t.Errorf("%s: String() = %q, want %q", c.Property, got, want[i])
		}
	}
}

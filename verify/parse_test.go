package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

func TestParseGood(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []Resource
	}{
		{
			name: "plain values keep the attribute's type",
			yaml: `
file:
  /etc/motd:
    exists: true
    mode: 0644
    uid: 0
    owner: root
package:
  nginx:
    installed: true
    versions: [1.10, "2.4-1"]
`,
			want: []Resource{
				{Type: "file", ID: "/etc/motd", Target: "/etc/motd", Source: "t.yaml:3", Checks: []Check{
					{"exists", &Matcher{Op: opEqual, Value: true}},
					{"mode", &Matcher{Op: opEqual, Value: "0644"}},
					{"uid", &Matcher{Op: opEqual, Value: 0.0}},
					{"owner", &Matcher{Op: opEqual, Value: "root"}},
				}},
				{Type: "package", ID: "nginx", Target: "nginx", Source: "t.yaml:9", Checks: []Check{
					{"installed", &Matcher{Op: opEqual, Value: true}},
					{"versions", &Matcher{Op: opContainElements, Args: []*Matcher{
						{Op: opEqual, Value: "1.10"}, {Op: opEqual, Value: "2.4-1"}}}},
				}},
			},
		},
		{
			name: "command with exec, timeout, patterns, title, meta and skip",
			yaml: `
command:
  hello:
    title: says hello
    meta: {sev: 5}
    exec: echo hello
    exit-status: 0
    stdout: [hello, "!bye", "/h.l+o/"]
    stderr: ""
    timeout: 2000
    skip: true
`,
			want: []Resource{{Type: "command", ID: "hello", Target: "echo hello", Source: "t.yaml:3",
				Title: "says hello", Meta: map[string]any{"sev": 5}, Skip: true, TimeoutMS: 2000,
				Checks: []Check{
					{"exit-status", &Matcher{Op: opEqual, Value: 0.0}},
					{"stdout", &Matcher{Op: opPatterns, Patterns: []string{"hello", "!bye", "/h.l+o/"}}},
					{"stderr", &Matcher{Op: opEqual, Value: ""}},
				}}},
		},
		{
			name: "advanced matchers",
			yaml: `
user:
  sshd:
    exists: true
    uid: {and: {gt: 50, lt: 100}}
    home: {or: [/var/empty/sshd, {have-prefix: /run}]}
    groups: {consist-of: [sshd, {match-regexp: "^no"}]}
    shell: {not: {contain-substring: bash}}
`,
			want: []Resource{{Type: "user", ID: "sshd", Target: "sshd", Source: "t.yaml:3", Checks: []Check{
				{"exists", &Matcher{Op: opEqual, Value: true}},
				{"uid", &Matcher{Op: opAnd, Args: []*Matcher{{Op: opGT, Value: 50.0}, {Op: opLT, Value: 100.0}}}},
				{"home", &Matcher{Op: opOr, Args: []*Matcher{{Op: opEqual, Value: "/var/empty/sshd"}, {Op: opHavePrefix, Value: "/run"}}}},
				{"groups", &Matcher{Op: opConsistOf, Args: []*Matcher{{Op: opEqual, Value: "sshd"}, {Op: opMatchRegexp, Value: "^no"}}}},
				{"shell", &Matcher{Op: opNot, Args: []*Matcher{{Op: opContainSubstring, Value: "bash"}}}},
			}}},
		},
		{
			name: "http options and a named url",
			yaml: `
http:
  health:
    url: http://127.0.0.1:8080/health
    status: 200
    method: POST
    request-headers: ["Host: example.org"]
    allow-insecure: true
    no-follow-redirects: true
    body: [ok]
`,
			want: []Resource{{Type: "http", ID: "health", Target: "http://127.0.0.1:8080/health", Source: "t.yaml:3",
				HTTP: &HTTPOptions{Method: "POST", RequestHeaders: []string{"Host: example.org"}, AllowInsecure: true, NoFollowRedirects: true},
				Checks: []Check{
					{"status", &Matcher{Op: opEqual, Value: 200.0}},
					{"body", &Matcher{Op: opPatterns, Patterns: []string{"ok"}}},
				}}},
		},
		{
			name: "port, service, group, process, kernel-param",
			yaml: `
port:
  tcp:80: {listening: true, ip: [0.0.0.0]}
service:
  nginx: {enabled: true, running: true}
group:
  www-data: {exists: true, gid: 33}
process:
  nginx: {running: true}
kernel-param:
  kernel.ostype: {value: Linux}
`,
			want: []Resource{
				{Type: "port", ID: "tcp:80", Target: "tcp:80", Source: "t.yaml:3", Checks: []Check{
					{"listening", &Matcher{Op: opEqual, Value: true}},
					{"ip", &Matcher{Op: opContainElements, Args: []*Matcher{{Op: opEqual, Value: "0.0.0.0"}}}}}},
				{Type: "service", ID: "nginx", Target: "nginx", Source: "t.yaml:5", Checks: []Check{
					{"enabled", &Matcher{Op: opEqual, Value: true}}, {"running", &Matcher{Op: opEqual, Value: true}}}},
				{Type: "group", ID: "www-data", Target: "www-data", Source: "t.yaml:7", Checks: []Check{
					{"exists", &Matcher{Op: opEqual, Value: true}}, {"gid", &Matcher{Op: opEqual, Value: 33.0}}}},
				{Type: "process", ID: "nginx", Target: "nginx", Source: "t.yaml:9", Checks: []Check{
					{"running", &Matcher{Op: opEqual, Value: true}}}},
				{Type: "kernel-param", ID: "kernel.ostype", Target: "kernel.ostype", Source: "t.yaml:11", Checks: []Check{
					{"value", &Matcher{Op: opEqual, Value: "Linux"}}}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse("t.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if diff := cmp.Diff(tt.want, s.Resources); diff != "" {
				t.Errorf("resources (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseBad(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // each must appear in the error
	}{
		{"unsupported type", "file:\n  /a: {exists: true}\nfirewall:\n  x: {open: true}\n",
			[]string{"t.yaml:3:1:", `resource type "firewall" is not supported`}},
		{"vars file", "alpine3:\n  packages: {apache2: '2.4'}\noverwrite: foo\n",
			[]string{"t.yaml:1:1:", "t.yaml is a vars file, not a test file: pass it with --vars", "alpine3, overwrite"}},
		{"unknown attribute", "file:\n  /etc/motd:\n    exists: true\n    colour: red\n",
			[]string{"t.yaml:4:5:", `file "/etc/motd"`, `attribute "colour" is not supported`}},
		{"template without its var", "file:\n  /x:\n    exists: {{ .Vars.x }}\n",
			[]string{"t.yaml:3:20:", "go template", `no entry for key "x"`, "--vars"}},
		{"template syntax", "file:\n  /x:\n    exists: {{ if }}\n",
			[]string{"t.yaml:3:", "go template", "missing value for if"}},
		{"template env", "file:\n  {{ .Env.KILN_TEST_UNSET_VAR }}:\n    exists: true\n",
			[]string{"t.yaml:2:9:", "KILN_TEST_UNSET_VAR", "kiln's environment"}},
		{"rendered line", "{{/* c */}}\nfile:\n  /x:\n    exists: yes\n",
			[]string{"t.yaml:4:13:", "rendered template"}},
		{"bad addr", "addr:\n  http://x:80:\n    reachable: true\n", []string{"t.yaml:2:3:", "tcp://host:port"}},
		{"bad dns type", "dns:\n  SOA:example.org:\n    resolvable: true\n", []string{"t.yaml:2:3:", "record type SOA"}},
		{"PTR of a name", "dns:\n  PTR:example.org:\n    resolvable: true\n", []string{"t.yaml:2:3:", "IP address"}},
		{"resolvable twice", "dns:\n  h:\n    resolvable: true\n    resolveable: true\n", []string{"t.yaml:4:5:", "given twice"}},
		{"relative mount", "mount:\n  home:\n    exists: true\n", []string{"t.yaml:2:3:", "absolute path"}},
		{"bad local-address", "addr:\n  tcp://h:1:\n    reachable: true\n    local-address: me\n", []string{"t.yaml:4:20:", "IP address"}},
		{"matching without matches", "matching:\n  m:\n    content: 1\n", []string{"t.yaml:2:3:", `missing required attribute "matches"`}},
		{"bad semver", "matching:\n  m:\n    content: 1.0.0\n    matches: {semver-constraint: '>>1'}\n", []string{"t.yaml:4:34:", "semver-constraint"}},
		{"bad yaml", "file: [\n", []string{"t.yaml:", "invalid YAML"}},
		{"not a bool", "file:\n  /x:\n    exists: yes\n",
			[]string{"t.yaml:3:13:", `file "/x": exists: expected true or false, found "yes"`}},
		{"missing required", "package:\n  nginx:\n    versions: [1]\n",
			[]string{"t.yaml:2:3:", `missing required attribute "installed"`}},
		{"no attributes", "package:\n  nginx:\n", []string{"t.yaml:2:3:", "has no attributes"}},
		{"unsupported matcher", "package:\n  k:\n    installed: true\n    versions: {gjson: {a: b}}\n",
			[]string{"t.yaml:4:16:", `matcher "gjson" is not supported`}},
		{"two keys in a matcher", "user:\n  u:\n    exists: true\n    uid: {gt: 1, lt: 5}\n",
			[]string{"t.yaml:4:10:", "exactly one key"}},
		{"empty and", "user:\n  u:\n    exists: true\n    uid: {and: []}\n", []string{"t.yaml:4:16:", "empty and"}},
		{"bad regexp", "command:\n  c:\n    exit-status: 0\n    stdout: [\"/(/\"]\n", []string{"t.yaml:4:13:", "pattern"}},
		{"bad port", "port:\n  tcp:http:\n    listening: true\n", []string{"t.yaml:2:3:", "tcp:22"}},
		{"bad url", "http:\n  health:\n    status: 200\n", []string{"t.yaml:2:3:", "http:// or https://"}},
		{"duplicate type", "file:\n  /a: {exists: true}\nfile:\n  /b: {exists: true}\n",
			[]string{"t.yaml:3:1:", `"file" is declared twice (first on line 1)`}},
		{"unsupported service attribute", "service:\n  s:\n    running: true\n    runlevel: [default]\n",
			[]string{"t.yaml:4:5:", `"runlevel"`}},
		{"empty file", "", []string{"no tests"}},
		{"list for a bool", "file:\n  /x:\n    exists: [true]\n", []string{"t.yaml:3:13:", "single value"}},
		{"two documents", "file:\n  /a: {exists: true}\n---\nfile:\n  /b: {exists: true}\n", []string{"one YAML document"}},
		{"merge keys", "file:\n  /a: &a {exists: true}\n  /b:\n    <<: *a\n", []string{"t.yaml:4:5:", "merge keys"}},
		{"service without checks", "service:\n  s: {title: x}\n", []string{"t.yaml:2:3:", "nothing to check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if kiln.ErrorCode(err) != kiln.EINVALID {
				t.Errorf("code = %q, want %q", kiln.ErrorCode(err), kiln.EINVALID)
			}
		})
	}
}

func TestParseIncludes(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	top := write("goss.yaml", `
file:
  /etc/passwd: {exists: true}
gossfile:
  parts/*.yaml: {}
  named:
    file: extra.yaml
  skipped.yaml:
    skip: true
`)
	write("parts/a.yaml", "command:\n  'true': {exit-status: 0}\n")
	write("parts/b.yaml", "gossfile:\n  ../extra.yaml: {}\n") // extra.yaml twice: read once
	write("extra.yaml", "user:\n  root: {exists: true}\n")
	s, err := ParseFile(top)
	if err != nil {
		t.Fatalf("ParseFile: %v", err)
	}
	var got []string
	for _, r := range s.Resources {
		got = append(got, r.Type+" "+r.ID)
	}
	want := []string{"file /etc/passwd", "command true", "user root"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}

	t.Run("cycle", func(t *testing.T) {
		p := write("cycle/a.yaml", "gossfile:\n  b.yaml: {}\nfile:\n  /x: {exists: true}\n")
		write("cycle/b.yaml", "gossfile:\n  a.yaml: {}\n")
		_, err := ParseFile(p)
		if err == nil || !strings.Contains(err.Error(), "includes itself") || !strings.Contains(err.Error(), "b.yaml:2:3:") {
			t.Errorf("err = %v, want a cycle at b.yaml:2:3", err)
		}
	})
	t.Run("missing and unmatched", func(t *testing.T) {
		p := write("missing.yaml", "gossfile:\n  nope.yaml: {}\n  none/*.yaml: {}\n")
		_, err := ParseFile(p)
		if err == nil || !strings.Contains(err.Error(), "missing.yaml:2:3:") || !strings.Contains(err.Error(), "missing.yaml:3:3: gossfile \"none/*.yaml\": no file matches") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("error in an included file names it", func(t *testing.T) {
		write("badinc/inc.yaml", "firewall:\n  x: {open: true}\nfile:\n  /y: {exists: true}\n")
		p := write("badinc/top.yaml", "gossfile:\n  inc.yaml: {}\nfile:\n  /x: {exists: true}\n")
		_, err := ParseFile(p)
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "badinc/inc.yaml")+":1:1:") {
			t.Errorf("err = %v", err)
		}
	})
}

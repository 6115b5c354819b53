package verify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadVars(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"a.yaml":    "os: {name: debian, suite: bookworm}\nport: 80\n",
		"b.json":    `{"os": {"suite": "trixie"}, "list": [1, 2]}`,
		"bad.yaml":  "- a list\n",
		"bad2.yaml": "a: [\n",
	})
	vars, err := LoadVars([]string{filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.json")}, "{port: 8080}", "--vars-inline")
	if err != nil {
		t.Fatal(err)
	}
	want := Vars{"os": map[string]any{"name": "debian", "suite": "trixie"}, "port": 8080, "list": []any{1, 2}}
	if diff := cmp.Diff(want, vars); diff != "" {
		t.Errorf("vars (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		files  []string
		inline string
		want   string
	}{
		{[]string{filepath.Join(dir, "bad.yaml")}, "", "bad.yaml: vars must be a mapping"},
		{[]string{filepath.Join(dir, "bad2.yaml")}, "", "bad2.yaml: invalid YAML"},
		{[]string{filepath.Join(dir, "none.yaml")}, "", "none.yaml: cannot read the vars file"},
		{nil, "[1]", "--vars-inline: vars must be a mapping"},
	} {
		if _, err := LoadVars(tt.files, tt.inline, "--vars-inline"); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("LoadVars(%v, %q) = %v, want %q", tt.files, tt.inline, err, tt.want)
		}
	}
}

// TestParseTemplates renders files, includes among them, with vars, the
// environment, goss's functions and sprig's.
func TestParseTemplates(t *testing.T) {
	t.Setenv("KILN_TEST_OS", "bookworm")
	dir := writeFiles(t, map[string]string{
		"top.yaml": `
gossfile:
  inc.yaml: {}
package:
{{- range $name, $ver := index .Vars .Env.KILN_TEST_OS "packages" }}
  {{ $name }}:
    installed: true
    versions: [{{ $ver }}]
{{- end }}
file:
{{- range mkSlice "/ETC/Passwd" "/etc/group" }}
  {{ . | toLower }}: {exists: true}
{{- end }}
matching:
  sprig:
    content: {{ "hi!" | upper | repeat 2 }}
    matches: HI!HI!
  env:
    content: {{ getEnv "KILN_TEST_UNSET" "fallback" }}
    matches: fallback
  regex:
    content: {{ if regexMatch "^book" .Env.KILN_TEST_OS }}yes{{ else }}no{{ end }}
    matches: "yes"
  submatch:
    content: {{ (findStringSubmatch "(?P<major>\\d+)\\.(\\d+)" "v12.4").major }}
    matches: 12
  read:
    content: {{ readFile "` + "{{DIR}}" + `/note.txt" }}
    matches: noted
`,
		"inc.yaml": "user:\n  {{ .Vars.user }}: {exists: true}\n",
		"note.txt": "noted\n",
	})
	top := filepath.Join(dir, "top.yaml")
	data, _ := os.ReadFile(top)
	if err := os.WriteFile(top, []byte(strings.ReplaceAll(string(data), "{{DIR}}", dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	vars := Vars{"user": "www-data", "bookworm": map[string]any{"packages": map[string]any{"nginx": "1.22.1-9"}}}
	s, err := ParseFileWith(top, ParseOptions{Vars: vars})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range s.Resources {
		for _, c := range r.Checks {
			v := c.Expect.String()
			if r.Type == "matching" {
				v = toString(r.Content) + " ~ " + v
			}
			got[r.Type+" "+r.ID+" "+c.Property] = v
		}
	}
	want := map[string]string{
		"package nginx installed":   "true",
		"package nginx versions":    "[1.22.1-9]",
		"file /etc/passwd exists":   "true",
		"file /etc/group exists":    "true",
		"matching sprig matches":    "HI!HI! ~ HI!HI!",
		"matching env matches":      "fallback ~ fallback",
		"matching regex matches":    "yes ~ yes",
		"matching submatch matches": "12 ~ 12",
		"matching read matches":     "noted ~ noted",
		"user www-data exists":      "true",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}

	// Without the vars, the include says what is missing, and where.
	_, err = ParseFile(top)
	if err == nil || !strings.Contains(err.Error(), "top.yaml:5:") || !strings.Contains(err.Error(), "--vars") {
		t.Errorf("without vars: %v", err)
	}
}

// TestParseMergesAcrossFiles: a resource declared in two files is one
// resource when the declarations agree, and an error when they do not.
func TestParseMergesAcrossFiles(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"top.yaml":      "gossfile:\n  a.yaml: {}\nservice:\n  nginx: {enabled: true, running: true}\n",
		"a.yaml":        "service:\n  nginx: {running: true, runlevels: []}\n",
		"clash.yaml":    "gossfile:\n  b.yaml: {}\nservice:\n  nginx: {enabled: true}\n",
		"b.yaml":        "service:\n  nginx: {enabled: false}\n",
		"same-url.yaml": "http:\n  get:\n    url: http://x/\n    status: 200\n  put:\n    url: http://x/\n    method: PUT\n    status: 200\n",
	})
	s, err := ParseFile(filepath.Join(dir, "top.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Resources) != 1 || s.Count() != 3 {
		t.Errorf("merged: %+v", s.Resources)
	}
	_, err = ParseFile(filepath.Join(dir, "clash.yaml"))
	if err == nil || !strings.Contains(err.Error(), "clash.yaml:4:3: service \"nginx\": is already declared at "+filepath.Join(dir, "b.yaml")+":2 with another enabled (false there, true here)") {
		t.Errorf("clash: %v", err)
	}
	// Two keys, one URL: two tests, as in goss.
	if s, err := ParseFile(filepath.Join(dir, "same-url.yaml")); err != nil || len(s.Resources) != 2 {
		t.Errorf("same url: %v", err)
	}
}

func TestParseNewResources(t *testing.T) {
	s, err := Parse("t.yaml", []byte(`
addr:
  udp://127.0.0.1:53: {reachable: true, timeout: 100, local-address: 127.0.0.1}
dns:
  MX:example.org: {resolveable: true, addrs: ["10 mx.example.org."], server: 192.0.2.53, timeout: 2000}
interface:
  eth0: {exists: true, addrs: [{have-prefix: "10."}], mtu: 1500}
mount:
  root: {mountpoint: /, exists: true, opts: [rw], vfs-opts: [rw], source: /dev/sda1, filesystem: ext4, usage: {lt: 90}, timeout: 500}
matching:
  m: {content: {a: [1, x]}, matches: {have-key-with-value: {a: [1]}}}
service:
  s: {enabled: true, runlevels: []}
`))
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string]Resource{}
	for _, r := range s.Resources {
		byType[r.Type] = r
	}
	if r := byType["addr"]; r.Target != "udp://127.0.0.1:53" || r.TimeoutMS != 100 || r.LocalAddress != "127.0.0.1" {
		t.Errorf("addr %+v", r)
	}
	if r := byType["dns"]; r.Server != "192.0.2.53" || r.TimeoutMS != 2000 || r.Checks[0].Property != "resolvable" {
		t.Errorf("dns %+v", r)
	}
	if r := byType["mount"]; r.Target != "/" || len(r.Checks) != 6 {
		t.Errorf("mount %+v", r)
	}
	if r := byType["matching"]; !cmp.Equal(r.Content, map[string]any{"a": []any{1.0, "x"}}) || r.Checks[0].Expect.String() != "have-key-with-value(a: [1])" {
		t.Errorf("matching %+v %s", r, r.Checks[0].Expect)
	}
	if n := s.Count(); n != 15 {
		t.Errorf("%d checks", n)
	}
}

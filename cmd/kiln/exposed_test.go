package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
)

// TestFleetExposedTriage: `kiln fleet exposed --advisory` on an advisory
// imported from the Debian security tracker's export, locally and through
// --server alike. By default only what Debian ships a DSA/DLA for counts:
// the finding Debian marked no-dsa and the unimportant one are left out,
// and a note counts the versions that have such findings and says how to
// add them; --include no-dsa,unimportant counts them, with Debian's
// decision in each finding; an unknown state is refused.
func TestFleetExposedTriage(t *testing.T) {
	url, toks, _ := remoteServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KILN_SERVER", "")
	t.Setenv("KILN_TOKEN", toks[kiln.RoleAdmin])
	c := newCompareCLI(t, url)
	files := t.TempDir()
	write := func(name, body string) string {
		t.Helper()
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// base-files says bookworm; the other packages are their own sources.
	old := write("old.txt", "base-files 12.4+deb12u5 amd64\nopenssl 3.0.9-1 amd64\nlibxml2 2.9.14+dfsg-1.3~deb12u1 amd64\ntiff 4.5.0-6 amd64\n")
	fixed := write("fixed.txt", "base-files 12.4+deb12u5 amd64\nopenssl 3.0.11-1 amd64\nlibxml2 2.9.14+dfsg-1.3~deb12u1 amd64\n")
	tracker := write("tracker.json", `{
  "openssl": {"CVE-2099-0001": {"description": "a flaw Debian fixes with a DSA", "scope": "remote",
    "releases": {"bookworm": {"status": "resolved", "repositories": {"bookworm": "3.0.11-1"}, "fixed_version": "3.0.11-1", "urgency": "high"}}}},
  "libxml2": {"CVE-2099-0001": {"description": "the same flaw, minor here", "scope": "remote",
    "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "2.9.14+dfsg-1.3~deb12u1"}, "urgency": "low", "nodsa": "Minor issue", "nodsa_reason": ""}}}},
  "tiff": {"CVE-2099-0001": {"description": "the same flaw, not one in Debian's build", "scope": "local",
    "releases": {"bookworm": {"status": "open", "repositories": {"bookworm": "4.5.0-6"}, "urgency": "unimportant"}}}}
}`)
	for _, args := range [][]string{
		{"image", "create", "appserver"},
		{"version", "create", "appserver", "--packages", old},   // appserver-1
		{"version", "create", "appserver", "--packages", fixed}, // appserver-2
		{"instance", "register", "--image", "appserver", "--version", "1", "--name", "web-1", "--env", "prod", "--launched-at", "2026-01-02T03:04:05Z"},
		{"instance", "register", "--image", "appserver", "--version", "1", "--name", "web-2", "--env", "prod", "--launched-at", "2026-01-02T03:04:05Z"},
		{"instance", "register", "--image", "appserver", "--version", "2", "--name", "web-3", "--env", "prod", "--launched-at", "2026-01-02T03:04:05Z"},
		{"advisory", "import", "debian-tracker", tracker},
	} {
		c.run(0, args...)
	}
	exposed := func(args ...string) kiln.Exposure {
		t.Helper()
		out, _ := c.run(0, append([]string{"fleet", "exposed", "--advisory", "CVE-2099-0001", "-o", "json"}, args...)...)
		var e kiln.Exposure
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("fleet exposed %v -o json: %v\n%s", args, err, out)
		}
		return e
	}
	findings := func(e kiln.Exposure) map[int]string {
		m := map[int]string{}
		for _, r := range e.Rows {
			m[r.Number] = strings.Join(r.Findings, " | ")
		}
		return m
	}
	const note = "2 versions have findings Debian issues no DSA/DLA for (counted: affected,fixed-later); add them with --include no-dsa,unimportant,end-of-life"

	// The default: the openssl finding only; the note counts appserver-1
	// (libxml2, tiff) and appserver-2 (libxml2).
	out, _ := c.run(0, "fleet", "exposed", "--advisory", "CVE-2099-0001")
	if !strings.Contains(out, "to rebuild: 2 instances on 1 versions") || !strings.Contains(out, "note: "+note) ||
		strings.Contains(out, "libxml2") || strings.Contains(out, "tiff") {
		t.Errorf("fleet exposed (default):\n%s", out)
	}
	e := exposed()
	if f := findings(e); e.Instances != 2 || len(f) != 1 || !strings.HasPrefix(f[1], "openssl 3.0.9-1:") {
		t.Errorf("default: %d instances, findings %v; want appserver-1's 2 on openssl alone", e.Instances, f)
	}

	// --include no-dsa: libxml2 counts on both versions; tiff still not.
	e = exposed("--include", "no-dsa")
	if f := findings(e); e.Instances != 3 || len(f) != 2 || !strings.Contains(f[2], "Debian: no DSA (no-dsa: Minor issue)") || strings.Contains(f[1], "tiff") {
		t.Errorf("--include no-dsa: %d instances, findings %v; want all 3, libxml2 with Debian's decision, no tiff", e.Instances, f)
	}
	if !slices.ContainsFunc(e.Notes, func(n string) bool {
		return strings.HasPrefix(n, "1 versions have findings Debian issues no DSA/DLA for")
	}) {
		t.Errorf("--include no-dsa: notes %q; want one counting appserver-1 (tiff)", e.Notes)
	}
	// base-files told each version's release.
	if slices.ContainsFunc(e.Notes, func(n string) bool { return strings.Contains(n, "do not say their Debian release") }) {
		t.Errorf("--include no-dsa: notes %q; base-files 12.4 says bookworm", e.Notes)
	}

	// --include no-dsa,unimportant: everything counts and no note is left.
	e = exposed("--include", "no-dsa,unimportant")
	if f := findings(e); e.Instances != 3 || !strings.Contains(f[1], "tiff 4.5.0-6: ") || !strings.Contains(f[1], "Debian: unimportant") {
		t.Errorf("--include no-dsa,unimportant: %d instances, findings %v", e.Instances, f)
	}
	for _, n := range e.Notes {
		if strings.Contains(n, "no DSA/DLA") {
			t.Errorf("--include no-dsa,unimportant: note %q; nothing is left out", n)
		}
	}

	if _, errs := c.run(1, "fleet", "exposed", "--advisory", "CVE-2099-0001", "--include", "minor"); !strings.Contains(errs, `--include`) || !strings.Contains(errs, `"minor"`) {
		t.Errorf("--include minor: %q; want the flag and the state named", errs)
	}
}

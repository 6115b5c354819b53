package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/fixtures"
)

// The advisory source commands against the shared OSV fixture served from
// a loopback server: add, sync (then 304), list with a failing source's
// error, remove.
func TestCLIAdvisorySources(t *testing.T) {
	dir := t.TempDir()
	ts := httptest.NewServer(http.StripPrefix("/osv/", http.FileServer(http.Dir(fixtures.Path(t, "osv")))))
	defer ts.Close()
	mustRun(t, dir, "advisory", "source", "add", "osv-dir", "--kind", "osv", "--url", ts.URL+"/osv/", "--every", "30m")
	if out := mustRun(t, dir, "advisory", "source", "sync", "osv-dir"); !strings.Contains(out, "osv-dir: 9 advisories (9 new") {
		t.Fatalf("first sync: %s", out)
	}
	if out := mustRun(t, dir, "advisory", "source", "sync"); !strings.Contains(out, "osv-dir: not modified (9 advisories kept)") {
		t.Fatalf("second sync: %s", out)
	}
	if out := mustRun(t, dir, "advisory", "list", "--source", "osv"); !strings.Contains(out, "DSA-3029-1") {
		t.Fatalf("advisory list: %s", out)
	}

	mustRun(t, dir, "advisory", "source", "add", "bad", "--kind", "osv", "--url", ts.URL+"/osv/malformed/ELA-669-1.json")
	_, errs, code := run(t, dir, "advisory", "source", "sync", "bad")
	if code == 0 || !strings.Contains(errs, "ELA-669-1.json") {
		t.Fatalf("malformed source: exit %d: %s", code, errs)
	}
	out := mustRun(t, dir, "advisory", "source", "list")
	for _, want := range []string{"osv-dir", "30m0s", "bad", "never", "ranges"} {
		if !strings.Contains(out, want) {
			t.Errorf("source list lacks %q:\n%s", want, out)
		}
	}
	if _, errs, code := run(t, dir, "advisory", "source", "add", "x", "--kind", "rss", "--url", ts.URL); code == 0 || !strings.Contains(errs, "--kind") {
		t.Errorf("unknown kind: exit %d: %s", code, errs)
	}
	if _, errs, code := run(t, dir, "fleet", "exposed", "--advisory", "DSA-3029-1", "--include", "minor"); code == 0 || !strings.Contains(errs, "--include") {
		t.Errorf("unknown --include: exit %d: %s", code, errs)
	}
	if out := mustRun(t, dir, "advisory", "source", "remove", "osv-dir"); !strings.Contains(out, "9 advisories") {
		t.Fatalf("remove: %s", out)
	}
}

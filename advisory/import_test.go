package advisory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestImportPath(t *testing.T) {
	advs, err := ImportPath(t.Context(), "testdata/osv")
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 2 || advs[0].ID != "DLA-9002-1" || advs[1].ID != "DSA-9001-1" {
		t.Errorf("imported %d advisories: %+v", len(advs), advs)
	}
	advs, err = ImportPath(t.Context(), "testdata/tracker/tracker.json")
	if err != nil || len(advs) != 2 {
		t.Errorf("tracker: %d advisories, %v", len(advs), err)
	}
}

func TestImportPathAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"osv/DSA-9001-1.json", "osv/DLA-9002-1.json", "malformed/number-version.json"} {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), readTestdata(t, f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	advs, err := ImportPath(t.Context(), dir)
	if err == nil || advs != nil {
		t.Fatalf("a directory with a bad file imported %d advisories, err %v", len(advs), err)
	}
	want := filepath.Join(dir, "number-version.json") + ":6:81: affected[0].ranges[0].events[1].fixed"
	if kiln.ErrorField(err) != want {
		t.Errorf("field %q, want %q", kiln.ErrorField(err), want)
	}

	// The same advisory twice is refused, naming both files.
	dup := t.TempDir()
	for _, name := range []string{"a.json", "b.json"} {
		if err := os.WriteFile(filepath.Join(dup, name), readTestdata(t, "osv/DSA-9001-1.json"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = ImportPath(t.Context(), dup)
	if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "a.json") || !strings.Contains(err.Error(), "b.json") {
		t.Errorf("duplicate: %v", err)
	}

	if _, err := ImportPath(t.Context(), t.TempDir()); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := ImportPath(t.Context(), filepath.Join(dir, "missing.json")); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("missing file: %v", err)
	}
}

func TestImportPathSharedFixtures(t *testing.T) {
	osvDir := needFixture(t, "osv")
	advs, err := ImportPath(t.Context(), osvDir)
	if err != nil {
		t.Fatalf("the good OSV records (subdirectories are not read): %v", err)
	}
	if len(advs) != 9 {
		t.Errorf("imported %d OSV advisories, want 9", len(advs))
	}
	_, err = ImportPath(t.Context(), filepath.Join(osvDir, "malformed"))
	if err == nil || !strings.Contains(err.Error(), "ELA-669-1.json:9:23: affected[0].ranges") {
		t.Errorf("malformed directory: %v", err)
	}
	advs, err = ImportPath(t.Context(), needFixture(t, "debian-tracker"))
	if err != nil {
		t.Fatal(err)
	}
	if len(advs) != 9 {
		t.Errorf("imported %d tracker advisories, want 9", len(advs))
	}

	// Match the imported set against a bookworm manifest.
	ix, err := NewIndex(advs, "bookworm")
	if err != nil {
		t.Fatal(err)
	}
	fs := ix.Match([]kiln.Package{
		{Name: "apparmor", Version: "3.0.8-3"},
		{Name: "sope4.9-libxml", Version: "5.8.0-1"},
		{Name: "chromium", Version: "120.0.6099.224-1~deb12u1"},
	}, Sources{"sope4.9-libxml": {Name: "sope"}})
	got := map[string]bool{}
	for _, f := range fs {
		got[f.Advisory+" "+f.Package] = f.Affected
	}
	want := map[string]bool{
		"CVE-2014-1424 apparmor":        false, // fixed_version 0
		"CVE-2016-1585 apparmor":        true,  // open
		"CVE-2017-6507 apparmor":        false, // 3.0.8-3 ≥ 2.11.0-3
		"CVE-2025-53603 sope4.9-libxml": true,  // 5.8.0-1 < 5.8.0-1+deb12u1
		"CVE-2022-0456 chromium":        false,
	}
	for k, v := range want {
		if a, ok := got[k]; !ok || a != v {
			t.Errorf("%s: affected=%v (found %v), want %v; all: %+v", k, a, ok, v, fs)
		}
	}
}

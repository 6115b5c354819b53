package advisory

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseDebianTrackerSharedFixtures(t *testing.T) {
	dir := needFixture(t, "debian-tracker")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no tracker files in %s", dir)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		advs, err := ParseDebianTracker(filepath.Base(f), data)
		if err != nil {
			t.Errorf("%v", err)
			continue
		}
		if len(advs) == 0 {
			t.Errorf("%s: no advisories", f)
		}
		for _, a := range advs {
			if err := a.Validate(); err != nil {
				t.Errorf("%s: %s: %v", f, a.ID, err)
			}
			if testing.Verbose() {
				t.Logf("%s: %s %d packages: %+v", filepath.Base(f), a.ID, len(a.Packages), a.Packages[0])
			}
		}
	}
}

package advisory

import (
	"cmp"
	"errors"
	"github.com/kiln-project/kiln/internal/fixtures"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/kiln-project/kiln"
)

func TestParseDebianTracker(t *testing.T) {
	advs, err := ParseDebianTracker("tracker.json", readTestdata(t, "tracker/tracker.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, a := range advs {
		ids = append(ids, a.ID)
	}
	// CVE-2099-0004 has "releases": [] and is left out.
	if d := gocmp.Diff([]string{"CVE-2099-0001", "CVE-2099-0003"}, ids); d != "" {
		t.Fatalf("ids (-want +got):\n%s", d)
	}
	want := []kiln.AffectedPackage{
		{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed, Severity: "high"},
		{Ecosystem: "Debian:11", Release: "bullseye", Name: "openssl", Status: kiln.AffectedOpen, Severity: "low", FixedLater: "bookworm 3.0.11-1~deb12u2"},
		{Ecosystem: "Debian", Release: "sid", Name: "openssl", Fixed: "3.1.4-1", Status: kiln.AffectedFixed, Severity: "high"},
		{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl1.0", Status: kiln.AffectedUndetermined, Severity: "not yet assigned"},
	}
	if d := gocmp.Diff(want, advs[0].Packages); d != "" {
		t.Errorf("CVE-2099-0001 packages (-want +got):\n%s", d)
	}
	if advs[0].Summary != "A flaw in OpenSSL." || advs[0].Source != kiln.AdvisoryDebianTracker || advs[0].URL == "" {
		t.Errorf("CVE-2099-0001 = %+v", advs[0])
	}
	if got := advs[1].Packages[0].Status; got != kiln.AffectedNotAffected {
		t.Errorf("fixed_version 0: status %q, want not-affected", got)
	}
}

func TestParseDebianTrackerMalformed(t *testing.T) {
	tests := []struct {
		name, data, field, msg string
	}{
		{"list.json", `[]`, "list.json:1:1", "not a JSON object"},
		{"type.json", "{\"a\": {\"CVE-1\": {\"releases\": {\"bookworm\": {\"status\": 1}}}}}", "type.json:1:54: a.CVE-1.releases.bookworm.status", "is a number; want a string"},
		{"status.json", `{"a": {"CVE-1": {"releases": {"bookworm": {"status": "fixed"}}}}}`, "status.json:1:54: a.CVE-1.releases.bookworm.status", "unknown status"},
		{"version.json", `{"a": {"CVE-1": {"releases": {"bookworm": {"status": "resolved", "fixed_version": "1.0-"}}}}}`, "version.json:1:83: a.CVE-1.releases.bookworm.fixed_version", "revision number is empty"},
		{"syntax.json", "{\"a\": {\"CVE-1\": {\"releases\": {,}}}}", "syntax.json:1:31: a", "syntax error"},
		{"truncated.json", `{"a": {"CVE-1": {"releases": {`, "truncated.json:1:", "truncated"},
		{"list-releases.json", `{"a": {"CVE-1": {"releases": [1]}}}`, "list-releases.json:1:30: a.CVE-1.releases", "want an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDebianTracker(tt.name, []byte(tt.data))
			if err == nil {
				t.Fatal("accepted")
			}
			if f := kiln.ErrorField(err); !strings.HasPrefix(f, tt.field) {
				t.Errorf("field = %q, want %q (%v)", f, tt.field, err)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
		})
	}
}

// slowParseTracker reads a tracker file with the token reader only.
func slowParseTracker(t *testing.T, name string, data []byte) []*kiln.Advisory {
	t.Helper()
	d, err := parseJSON(name, data)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*kiln.Advisory{}
	for i, pkg := range d.root.keys {
		if err := d.trackerPackage(byID, pkg, d.root.vals[i]); err != nil {
			t.Fatal(err)
		}
	}
	var out []*kiln.Advisory
	for _, a := range byID {
		slices.SortFunc(a.Packages, func(x, y kiln.AffectedPackage) int {
			return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Release, y.Release))
		})
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *kiln.Advisory) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// TestTrackerFastMatchesSlow checks that the typed fast path reads the same
// advisories as the token reader that reports errors.
func TestTrackerFastMatchesSlow(t *testing.T) {
	files := []string{"testdata/tracker/tracker.json"}
	for _, dir := range fixtures.Dirs() {
		if m, _ := filepath.Glob(filepath.Join(dir, "debian-tracker", "*.json")); dir != "" && len(m) > 0 {
			files = append(files, m...)
			break
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fast, err := ParseDebianTracker(f, data)
		if err != nil {
			t.Fatal(err)
		}
		if d := gocmp.Diff(slowParseTracker(t, f, data), fast); d != "" {
			t.Errorf("%s: fast and slow paths differ (-slow +fast):\n%s", f, d)
		}
	}
}

// TestEachDebianTrackerMerges checks that the per-package advisories
// EachDebianTracker gives, merged in the order they came, are what
// ParseDebianTracker returns (tracker.json lists CVE-2099-0001 under two
// packages), and that each call holds one package's entries.
func TestEachDebianTrackerMerges(t *testing.T) {
	files := []string{"testdata/tracker/tracker.json"}
	for _, dir := range fixtures.Dirs() {
		if m, _ := filepath.Glob(filepath.Join(dir, "debian-tracker", "*.json")); dir != "" && len(m) > 0 {
			files = append(files, m...)
			break
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ParseDebianTracker(f, data)
		if err != nil {
			t.Fatal(err)
		}
		byID := map[string]*kiln.Advisory{}
		calls, merged := 0, 0
		err = EachDebianTracker(f, strings.NewReader(string(data)), func(advs []*kiln.Advisory) error {
			calls++
			for _, a := range advs {
				for _, p := range a.Packages {
					if p.Name != advs[0].Packages[0].Name {
						t.Errorf("%s: one call holds %s and %s", f, p.Name, advs[0].Packages[0].Name)
					}
				}
				if prev := byID[a.ID]; prev != nil {
					MergeTracker(prev, a)
					merged++
				} else {
					byID[a.ID] = a
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var got []*kiln.Advisory
		for _, a := range byID {
			got = append(got, a)
		}
		slices.SortFunc(got, func(x, y *kiln.Advisory) int { return cmp.Compare(x.ID, y.ID) })
		if d := gocmp.Diff(want, got); d != "" {
			t.Errorf("%s: merged per-package advisories differ (-ParseDebianTracker +EachDebianTracker):\n%s", f, d)
		}
		if f == files[0] && (calls < 2 || merged == 0) {
			t.Errorf("%s: %d calls, %d merges; want one call per package and CVE-2099-0001 merged", f, calls, merged)
		}
	}

	// An error from fn stops the read and is returned.
	stop := errors.New("stop")
	if err := EachDebianTracker("t.json", strings.NewReader(string(readTestdata(t, "tracker/tracker.json"))), func([]*kiln.Advisory) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("fn's error: got %v", err)
	}
}

package fleet

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

var now = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func day(n int) time.Time { return now.Add(-time.Duration(n) * 24 * time.Hour) }

// usage is a small estate: basic-linux 1 (built 200 days ago) and 2 (10
// days, the latest ready), appserver 3 (100 days), and an unknown
// appserver-9.
func usage() []*kiln.Usage {
	return []*kiln.Usage{
		{Image: "appserver", Number: 3, Environment: "prod", Known: true, Status: kiln.StatusReady, BuiltAt: day(100), LatestReady: 4, Instances: 5},
		{Image: "appserver", Number: 3, Environment: "staging", Known: true, Status: kiln.StatusReady, BuiltAt: day(100), LatestReady: 4, Instances: 2, Lost: 1},
		{Image: "appserver", Number: 9, Environment: "prod", LatestReady: 4, Instances: 1},
		{Image: "basic-linux", Number: 1, Environment: "dev", Known: true, Status: kiln.StatusDeprecated, BuiltAt: day(200), LatestReady: 2, Instances: 3},
		{Image: "basic-linux", Number: 2, Environment: "prod", Known: true, Status: kiln.StatusReady, BuiltAt: day(10), LatestReady: 2, Instances: 7},
	}
}

type row struct {
	Name                  string
	Instances, Lost, Over int
	Unknown               bool
}

func flat(rs []*kiln.ReportRow) []row {
	var out []row
	for _, r := range rs {
		out = append(out, row{r.Name, r.Instances, r.Lost, r.OverAge, r.Unknown})
	}
	return out
}

func TestBuildReport(t *testing.T) {
	prod90 := []*kiln.AgePolicy{{Environment: "prod", MaxAge: kiln.AgeOf(90 * 24 * time.Hour)}}
	tests := []struct {
		name     string
		us       []*kiln.Usage
		policies []*kiln.AgePolicy
		want     []row
		total    int
		unknown  int
		over     int
	}{
		{"empty", nil, nil, nil, 0, 0, 0},
		{"no policies", usage(), nil, []row{
			{"appserver-3", 7, 1, 0, false}, {"appserver-9", 1, 0, 0, true},
			{"basic-linux-1", 3, 0, 0, false}, {"basic-linux-2", 7, 0, 0, false},
		}, 18, 1, 0},
		{"prod limited to 90 days: only prod instances of old versions count", usage(), prod90, []row{
			{"appserver-3", 7, 1, 5, false}, {"appserver-9", 1, 0, 0, true},
			{"basic-linux-1", 3, 0, 0, false}, {"basic-linux-2", 7, 0, 0, false},
		}, 18, 1, 5},
		{"rows out of order are merged as in order", reversed(usage()), prod90, []row{
			{"appserver-3", 7, 1, 5, false}, {"appserver-9", 1, 0, 0, true},
			{"basic-linux-1", 3, 0, 0, false}, {"basic-linux-2", 7, 0, 0, false},
		}, 18, 1, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := BuildReport(tt.us, tt.policies, now, "")
			if diff := cmp.Diff(tt.want, flat(rep.Rows)); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if rep.Instances != tt.total || rep.Unknown != tt.unknown || rep.OverAge != tt.over || rep.Versions != len(tt.want) {
				t.Errorf("totals: %d instances, %d unknown, %d over age, %d versions", rep.Instances, rep.Unknown, rep.OverAge, rep.Versions)
			}
		})
	}
}

func TestBuildOverage(t *testing.T) {
	type orow struct {
		Name, Env string
		Over      string
		Instances int
	}
	tests := []struct {
		name     string
		maxAge   kiln.Age
		policies []*kiln.AgePolicy
		want     []orow
	}{
		{"90 days everywhere", kiln.AgeOf(90 * 24 * time.Hour), nil, []orow{
			{"appserver-3", "prod", "10d", 5}, {"appserver-3", "staging", "10d", 2}, {"basic-linux-1", "dev", "110d", 3},
		}},
		{"a year: nothing", kiln.AgeOf(365 * 24 * time.Hour), nil, nil},
		{"policies: dev 150 days, prod 5 days", 0, []*kiln.AgePolicy{
			{Environment: "dev", MaxAge: kiln.AgeOf(150 * 24 * time.Hour)}, {Environment: "prod", MaxAge: kiln.AgeOf(5 * 24 * time.Hour)},
		}, []orow{
			{"appserver-3", "prod", "95d", 5}, {"basic-linux-1", "dev", "50d", 3}, {"basic-linux-2", "prod", "5d", 7},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := BuildOverage(usage(), tt.maxAge, tt.policies, now, "")
			var got []orow
			total := 0
			for _, r := range o.Rows {
				got = append(got, orow{r.Name, r.Environment, r.Over.String(), r.Instances})
				total += r.Instances
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
			if o.Instances != total {
				t.Errorf("total %d, rows add up to %d", o.Instances, total)
			}
		})
	}
}

func TestBuildStale(t *testing.T) {
	s := BuildStale(usage(), "")
	var got []string
	for _, r := range s.Rows {
		got = append(got, r.Name+"<"+r.Latest)
	}
	// appserver-9 is newer than the latest ready appserver-4: not stale.
	want := []string{"appserver-3<appserver-4", "basic-linux-1<basic-linux-2"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stale (-want +got):\n%s", diff)
	}
	if s.Instances != 10 || s.Versions != 2 {
		t.Errorf("totals %d instances %d versions", s.Instances, s.Versions)
	}
}

func TestExposedFixedIn(t *testing.T) {
	tests := []struct {
		name    string
		fixedIn []kiln.VersionRef
		want    []string
		total   int
	}{
		{"the issue's statement", []kiln.VersionRef{{Image: "basic-linux", Number: 2}, {Image: "appserver", Number: 3}, {Image: "container-node", Number: 2}},
			[]string{"basic-linux-1"}, 3},
		{"fixed in appserver-4: the unknown appserver-9 is not exposed", []kiln.VersionRef{{Image: "appserver", Number: 4}},
			[]string{"appserver-3"}, 7},
		{"fixed in appserver-10: unknown versions count too", []kiln.VersionRef{{Image: "appserver", Number: 10}},
			[]string{"appserver-3", "appserver-9"}, 8},
		{"image not in use", []kiln.VersionRef{{Image: "container-node", Number: 2}}, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := exposedFixedIn(usage(), tt.fixedIn, "")
			var got []string
			for _, r := range e.Rows {
				got = append(got, r.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("exposed (-want +got):\n%s", diff)
			}
			if e.Instances != tt.total {
				t.Errorf("total %d, want %d", e.Instances, tt.total)
			}
		})
	}
}

func TestRelease(t *testing.T) {
	ms := map[kiln.VersionRef]*kiln.PackageManifest{}
	add := func(m *kiln.PackageManifest) *kiln.PackageManifest { ms[m.Version] = m; return m }
	bl := add(&kiln.PackageManifest{Version: kiln.VersionRef{Image: "basic-linux", Number: 1}, Origin: "bookworm@http://deb.debian.org/debian"})
	app := add(&kiln.PackageManifest{Version: kiln.VersionRef{Image: "appserver", Number: 1}, Origin: "basic-linux-1"})
	re := add(&kiln.PackageManifest{Version: kiln.VersionRef{Image: "appserver", Number: 2}, Parent: &app.Version})
	tar := add(&kiln.PackageManifest{Version: kiln.VersionRef{Image: "vendor", Number: 1}, Origin: "https://example.com/rootfs.tar@sha256"})
	for m, want := range map[*kiln.PackageManifest]string{bl: "bookworm", app: "bookworm", re: "bookworm", tar: ""} {
		got, ok := Release(m, ms)
		if got != want || ok != (want != "") {
			t.Errorf("Release(%s) = %q, %v; want %q", m.Version, got, ok, want)
		}
	}
}

// Revoked versions (themselves or through their base) are listed by every
// exposure, whatever the advisory or fixed-in statement says, with their
// finding and a note; ExposedRevoked lists only them.
func TestExposureListsRevoked(t *testing.T) {
	us := append(usage(), &kiln.Usage{Image: "worker", Number: 2, Environment: "prod", Known: true, Status: kiln.StatusRevoked, BuiltAt: day(20), Instances: 4})
	e := exposedFixedIn(us, []kiln.VersionRef{{Image: "appserver", Number: 4}}, "")
	var got []string
	for _, r := range e.Rows {
		got = append(got, r.Name)
		if r.Name == "worker-2" && (len(r.Findings) != 1 || r.Findings[0] != RevokedFinding) {
			t.Errorf("worker-2 findings %v, want %q", r.Findings, RevokedFinding)
		}
	}
	if diff := cmp.Diff([]string{"appserver-3", "worker-2"}, got); diff != "" {
		t.Errorf("exposed (-want +got):\n%s", diff)
	}
	if e.Instances != 11 || len(e.Notes) != 1 || !strings.Contains(e.Notes[0], "4 instances on 1 revoked versions") {
		t.Errorf("total %d, notes %q; want 11 and a note counting the revoked ones", e.Instances, e.Notes)
	}
	only := BuildExposure(us, nil, nil, nil, "")
	if len(only.Rows) != 1 || only.Rows[0].Name != "worker-2" || only.Instances != 4 {
		t.Errorf("revoked only: %+v", only)
	}
}

func reversed(us []*kiln.Usage) []*kiln.Usage {
	slices.Reverse(us)
	return us
}

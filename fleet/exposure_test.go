package fleet_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/fleet"
)

// TestExposedToTriage: Debian's triage decides what `kiln fleet exposed
// --advisory` counts. By default (nil Include, or what --include adds
// nothing to) only what Debian would ship a DSA/DLA for counts; findings
// triaged no-dsa or unimportant are left out, and a note counts the
// versions that have them and says how to add them. --include counts them,
// and the note counts only what is still left out.
func TestExposedToTriage(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:test")
	clock := fleet.NewSynthClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	db := openBackend(t, "sqlite", clock.Now)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.CreateImage(ctx, &kiln.Image{Name: "appserver"}))
	version := func(pkgs ...kiln.Package) kiln.VersionRef {
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{
			Sources:  []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"}},
			Packages: pkgs}})
		must(err)
		return v.Ref()
	}
	ssl := func(v string) kiln.Package {
		return kiln.Package{Name: "libssl3", Version: v, Architecture: "amd64", Source: "openssl"}
	}
	xml := kiln.Package{Name: "libxml2", Version: "2.9.14+dfsg-1.3~deb12u1", Architecture: "amd64"}
	tiff := kiln.Package{Name: "libtiff6", Version: "4.5.0-6+deb12u1", Architecture: "amd64", Source: "tiff"}
	// appserver-1: all three; appserver-2: the openssl fix and libxml2;
	// appserver-3: the openssl fix only.
	a1 := version(ssl("3.0.9-1"), xml, tiff)
	a2 := version(ssl("3.0.11-1"), xml)
	a3 := version(ssl("3.0.11-1"))
	var insts []*kiln.Instance
	for r, n := range map[kiln.VersionRef]int{a1: 2, a2: 3, a3: 1} {
		for range n {
			insts = append(insts, &kiln.Instance{Version: r, Environment: "prod"})
		}
	}
	must(db.RegisterInstances(ctx, insts, kiln.RegisterOptions{}))
	_, err := db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "CVE-2099-0001", Source: kiln.AdvisoryDebianTracker,
		Packages: []kiln.AffectedPackage{
			// Debian ships a DSA for it: counted by default.
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1", Status: kiln.AffectedFixed, Severity: "high"},
			// A minor issue: no DSA.
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "libxml2", Status: kiln.AffectedOpen, Severity: "low", NoDSA: "no-dsa", Note: "Minor issue"},
			// Not a security issue in Debian's build.
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "tiff", Status: kiln.AffectedOpen, Severity: "unimportant"},
		}}})
	must(err)

	const note = "versions have findings Debian issues no DSA/DLA for"
	for _, c := range []struct {
		name      string
		include   []string
		nilInc    bool
		instances int
		rows      map[kiln.VersionRef][]string // version → package names of its findings
		note      string                       // "" : no triage note
	}{
		{name: "default (nil)", nilInc: true, instances: 2,
			rows: map[kiln.VersionRef][]string{a1: {"libssl3"}},
			note: "2 " + note + " (counted: affected,fixed-later); add them with --include no-dsa,unimportant,end-of-life"},
		{name: "default (--include none)", instances: 2,
			rows: map[kiln.VersionRef][]string{a1: {"libssl3"}},
			note: "2 " + note + " (counted: affected,fixed-later)"},
		{name: "--include no-dsa", include: []string{"no-dsa"}, instances: 5,
			rows: map[kiln.VersionRef][]string{a1: {"libssl3", "libxml2"}, a2: {"libxml2"}},
			note: "1 " + note + " (counted: affected,fixed-later,no-dsa,postponed,ignored)"},
		{name: "--include no-dsa,unimportant", include: []string{"no-dsa,unimportant"}, instances: 5,
			rows: map[kiln.VersionRef][]string{a1: {"libssl3", "libtiff6", "libxml2"}, a2: {"libxml2"}}},
		{name: "--include all", include: []string{"all"}, instances: 5,
			rows: map[kiln.VersionRef][]string{a1: {"libssl3", "libtiff6", "libxml2"}, a2: {"libxml2"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fl := fleet.New(db, db)
			fl.Clock = clock.Now
			if !c.nilInc {
				inc, err := advisory.ParseInclude("--include", c.include)
				must(err)
				fl.Include = inc
			}
			e, err := fl.ExposedTo(ctx, "CVE-2099-0001", "")
			must(err)
			if e.Instances != c.instances || e.Versions != len(c.rows) {
				t.Errorf("exposed: %d instances on %d versions, want %d on %d", e.Instances, e.Versions, c.instances, len(c.rows))
			}
			for _, r := range e.Rows {
				ref := kiln.VersionRef{Image: r.Image, Number: r.Number}
				var pkgs []string
				for _, f := range r.Findings {
					name, _, _ := strings.Cut(f, " ")
					pkgs = append(pkgs, name)
				}
				slices.Sort(pkgs)
				if want, ok := c.rows[ref]; !ok || !slices.Equal(pkgs, want) {
					t.Errorf("%s: findings %q; want findings of %v", ref, r.Findings, want)
				}
			}
			var triage []string
			for _, n := range e.Notes {
				if strings.Contains(n, note) {
					triage = append(triage, n)
				}
			}
			switch {
			case c.note == "" && len(triage) > 0:
				t.Errorf("notes %q; want no triage note (nothing is left out)", triage)
			case c.note != "" && (len(triage) != 1 || !strings.HasPrefix(triage[0], c.note)):
				t.Errorf("notes %q; want one starting %q", e.Notes, c.note)
			}
			if c.note != "" && !strings.Contains(triage[0], "--include no-dsa,unimportant,end-of-life") {
				t.Errorf("the triage note %q does not say how to count the findings", triage[0])
			}
			// A counted triaged finding says what Debian decided.
			for _, r := range e.Rows {
				for _, f := range r.Findings {
					switch {
					case strings.HasPrefix(f, "libxml2 ") && !strings.HasSuffix(f, "Debian: no DSA (no-dsa: Minor issue)"),
						strings.HasPrefix(f, "libtiff6 ") && !strings.HasSuffix(f, "Debian: unimportant"):
						t.Errorf("%s-%d: finding %q does not say Debian's triage", r.Image, r.Number, f)
					}
				}
			}
		})
	}
}

package fleet_test

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// TestRecordHistory records a snapshot of a small estate on SQLite: an
// image-level advisory counts at every severity, a package-level one at
// its own (high), an advisory's fixed-in statement decides for the image
// it names even where its packages match, and pruning drops old days.
func TestRecordHistory(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:test")
	clock := fleet.NewSynthClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	db := openBackend(t, "sqlite", clock.Now)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, img := range []string{"basic-linux", "appserver"} {
		must(db.CreateImage(ctx, &kiln.Image{Name: img}))
	}
	version := func(img, sslVersion string, ready bool) kiln.VersionRef {
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: img, Provenance: kiln.Provenance{
			Sources:  []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"}},
			Packages: []kiln.Package{{Name: "libssl3", Version: sslVersion, Architecture: "amd64", Source: "openssl"}}}})
		must(err)
		if ready {
			for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
				_, err := db.SetStatus(ctx, v.Ref(), st, "")
				must(err)
			}
		}
		return v.Ref()
	}
	b1 := version("basic-linux", "3.0.9-1", true)
	b2 := version("basic-linux", "3.0.13-1", true)
	a1 := version("appserver", "3.0.9-1", true)
	var insts []*kiln.Instance
	add := func(r kiln.VersionRef, env string, n int) {
		for range n {
			insts = append(insts, &kiln.Instance{Version: r, Environment: env})
		}
	}
	add(b1, "prod", 3)
	add(b2, "prod", 2)
	add(a1, "prod", 4)
	add(b1, "dev", 1)
	must(db.RegisterInstances(ctx, insts, kiln.RegisterOptions{}))
	_, err := db.PutAdvisories(ctx, []*kiln.Advisory{
		// Package-level, high: basic-linux-1 is exposed; appserver is named
		// by its fixed-in statement (fixed in appserver-1), so not.
		{ID: "DSA-1", Source: kiln.AdvisoryOSV, FixedIn: []kiln.VersionRef{a1},
			Packages: []kiln.AffectedPackage{{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1", Status: kiln.AffectedFixed, Severity: "high"}}},
		// Image-level, no severity: appserver-1 must be rebuilt.
		{ID: "KILN-1", Source: kiln.AdvisoryManual, FixedIn: []kiln.VersionRef{{Image: "appserver", Number: 2}}},
	})
	must(err)
	fl := fleet.New(db, db)
	fl.Clock = clock.Now
	must(db.RecordSnapshot(ctx, clock.Now().Add(-100*24*time.Hour), []*kiln.FleetCount{{Environment: "prod", Instances: 1}}))
	cs, err := fl.RecordHistory(ctx, db, db, 90*24*time.Hour)
	must(err)
	got, err := db.ListSnapshots(ctx, kiln.HistoryFilter{})
	must(err)
	if len(got) != 2 || len(cs) != 2 {
		t.Fatalf("history %+v; want today's dev and prod only (the old day pruned)", got)
	}
	dev, prod := got[0], got[1]
	wantProd := kiln.FleetCount{Day: kiln.Day(clock.Now()), Environment: "prod", Instances: 9, OnLatest: 6,
		Exposed: kiln.ExposureCounts{Low: 7, Medium: 7, High: 7, Critical: 4}}
	prod.RecordedAt = time.Time{}
	if *prod != wantProd {
		t.Errorf("prod %+v\nwant %+v", *prod, wantProd)
	}
	if dev.Instances != 1 || dev.OnLatest != 0 || dev.Exposed.High != 1 || dev.Exposed.Critical != 0 {
		t.Errorf("dev %+v", *dev)
	}
	// The numbers are the report's.
	rep, err := fl.Report(ctx, "prod")
	must(err)
	if rep.Instances != prod.Instances || rep.OverAge != prod.OverAge {
		t.Errorf("report says %d instances, %d over age", rep.Instances, rep.OverAge)
	}
}

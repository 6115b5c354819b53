package fleet_test

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// TestSynthesizeCountsOnly: a fleet synthesized as counts only reads, through
// the stores' Usage and the reports, exactly as the same fleet (same seed)
// synthesized as instance rows counted by the store's triggers.
func TestSynthesizeCountsOnly(t *testing.T) {
	cfg := fleet.SynthConfig{Images: 10, Versions: 200, Instances: 20_000, Advisories: 5,
		Envs: []string{"dev", "staging", "prod"}, Seed: 7, Span: 365 * 24 * time.Hour}
	ctx := context.Background()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			type result struct {
				usage   []*kiln.Usage
				report  *kiln.Report
				overage *kiln.Overage
				stale   *kiln.Stale
				exposed *kiln.Exposure
			}
			run := func(countsOnly bool) result {
				clock := fleet.NewSynthClock(start)
				db := openBackend(t, kind, clock.Now)
				c := cfg
				c.CountsOnly = countsOnly
				if err := fleet.Synthesize(ctx, db, clock, c); err != nil {
					t.Fatal(err)
				}
				if err := db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: kiln.AgeOf(90 * 24 * time.Hour)}); err != nil {
					t.Fatal(err)
				}
				_, n, err := db.ListInstances(ctx, kiln.InstanceFilter{Limit: 1})
				if err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int{false: cfg.Instances, true: 0}[countsOnly]; n != want {
					t.Fatalf("counts only %v: %d instance rows, want %d", countsOnly, n, want)
				}
				fl := fleet.New(db, db)
				fl.Clock = clock.Now
				var r result
				if r.usage, err = db.Usage(ctx, kiln.UsageFilter{}); err != nil {
					t.Fatal(err)
				}
				if r.report, err = fl.Report(ctx, ""); err != nil {
					t.Fatal(err)
				}
				if r.overage, err = fl.Overage(ctx, 0, ""); err != nil {
					t.Fatal(err)
				}
				if r.stale, err = fl.Stale(ctx, "prod"); err != nil {
					t.Fatal(err)
				}
				if r.exposed, err = fl.ExposedTo(ctx, "SYNTH-0001", ""); err != nil {
					t.Fatal(err)
				}
				return r
			}
			rows, counts := run(false), run(true)
			if rows.report.Instances != cfg.Instances || rows.report.Versions < cfg.Versions/2 || rows.overage.Instances == 0 || rows.exposed.Instances == 0 {
				t.Fatalf("the fleet is too thin to compare: %d instances on %d versions, %d over age, %d exposed",
					rows.report.Instances, rows.report.Versions, rows.overage.Instances, rows.exposed.Instances)
			}
			if len(rows.usage) != len(counts.usage) {
				t.Fatalf("usage: %d rows from instance rows, %d from counts only", len(rows.usage), len(counts.usage))
			}
			for i := range rows.usage {
				if !reflect.DeepEqual(rows.usage[i], counts.usage[i]) {
					t.Fatalf("usage[%d]: %+v from instance rows, %+v from counts only", i, rows.usage[i], counts.usage[i])
				}
			}
			for name, pair := range map[string][2]any{"report": {rows.report, counts.report}, "overage": {rows.overage, counts.overage},
				"stale": {rows.stale, counts.stale}, "exposed": {rows.exposed, counts.exposed}} {
				if !reflect.DeepEqual(pair[0], pair[1]) {
					t.Errorf("%s differs between instance rows and counts only", name)
				}
			}
		})
	}
}

package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// FleetReports times the fleet reports over a synthetic fleet
// (fleet.Synthesize: 100 images, 10,000 versions, three environments)
// of instances instances (100,000 in --quick), on each backend: the
// best of five runs of each report. Target: 100 ms for the report,
// exposure and overage. Up to countsOnlyAbove instances are written as
// instance rows through the store; above it the same fleet (same seed) is
// synthesized as counts only (fleet.SynthConfig.CountsOnly), which is what
// the reports read either way: 10,000,000 rows would take hours here.
func FleetReports(instances int) Measure {
	return Measure{
		ID: "fleet", Title: "fleet reports over a synthetic fleet", Quick: true,
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			n := instances
			if env.Quick {
				n = min(n, 100_000)
			}
			var figs []Figure
			for _, kind := range env.backends() {
				f, err := fleetRun(ctx, env, kind, n)
				figs = append(figs, f...)
				if err != nil {
					return figs, fmt.Errorf("%s: %w", kind, err)
				}
			}
			return figs, nil
		},
	}
}

// countsOnlyAbove is the largest fleet synthesized as instance rows.
const countsOnlyAbove = 1_000_000

var synthStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func fleetRun(ctx context.Context, env *Env, kind string, n int) ([]Figure, error) {
	cfg := fleet.SynthConfig{Images: 100, Versions: 10_000, Instances: n, Advisories: 50,
		Envs: []string{"dev", "staging", "prod"}, Seed: 1, Span: 365 * 24 * time.Hour,
		CountsOnly: n > countsOnlyAbove}
	clock := fleet.NewSynthClock(synthStart)
	db, closeDB, err := env.openStore(ctx, kind, clock.Now)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	how := "instance rows"
	if cfg.CountsOnly {
		how = "counts only"
	}
	env.Progressf("fleet: synthesizing %d instances on %s (%s)", n, kind, how)
	t0 := time.Now()
	if err := fleet.Synthesize(ctx, db, clock, cfg); err != nil {
		return nil, err
	}
	env.Progressf("fleet: synthesized in %s", time.Since(t0).Round(time.Second))
	fl := fleet.New(db, db)
	fl.Clock = clock.Now
	maxAge := kiln.AgeOf(90 * 24 * time.Hour)
	if err := db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: maxAge}); err != nil {
		return nil, err
	}
	if rep, err := fl.Report(ctx, ""); err != nil {
		return nil, err
	} else if rep.Instances != n {
		return nil, fmt.Errorf("the synthetic fleet's report counts %d instances, want %d", rep.Instances, n)
	}
	fixed := []kiln.VersionRef{{Image: "img-001", Number: cfg.Versions / 200}, {Image: "img-002", Number: cfg.Versions / 100}}
	scale := fmt.Sprintf("%s instances (%s), 10,000 versions", groupThousands(int64(n)), how)
	reports := []struct {
		id, title string
		target    bool
		run       func() error
	}{
		{"report", "fleet report", true, func() error { _, err := fl.Report(ctx, ""); return err }},
		{"report-env", "fleet report --env prod", false, func() error { _, err := fl.Report(ctx, "prod"); return err }},
		{"exposed", "fleet exposed --fixed-in (2 images)", true, func() error { _, err := fl.ExposedFixedIn(ctx, fixed, ""); return err }},
		{"overage", "fleet overage --max-age 90d", true, func() error { _, err := fl.Overage(ctx, maxAge, ""); return err }},
		{"stale", "fleet stale", false, func() error { _, err := fl.Stale(ctx, ""); return err }},
	}
	var figs []Figure
	for _, r := range reports {
		best, err := bestOf(ctx, 5, r.run)
		if err != nil {
			return figs, fmt.Errorf("%s: %w", r.title, err)
		}
		f := Millis("fleet."+kind+"."+r.id, r.title+" on "+kind, best).Noted("%s, best of 5", scale)
		if r.target {
			f = f.AtMost(100)
		}
		figs = append(figs, f)
	}
	return figs, nil
}

// bestOf runs f n times and returns the fastest run.
func bestOf(ctx context.Context, n int, f func() error) (time.Duration, error) {
	best := time.Duration(-1)
	for range n {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		t0 := time.Now()
		if err := f(); err != nil {
			return 0, err
		}
		if d := time.Since(t0); best < 0 || d < best {
			best = d
		}
	}
	return best, nil
}

package main

import (
	"context"
	"log/slog"
	"os"
	"sync"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/store"
)

// startPipeline runs kiln serve's pipeline work until ctx ends: the
// webhook sender always; with work (--work pipelines) the worker (claims
// queued runs; marks the runs of dead or silent workers interrupted and
// resumes them, Runner.Resume), the triggers and the cron schedules, which
// queue runs only a worker carries out. The caller checked that this
// machine has a platform. The triggers look for work every triggerEvery
// (0: a minute). The returned function waits for them to stop.
func startPipeline(ctx context.Context, g *graph, work bool, triggerEvery time.Duration) func() {
	if triggerEvery <= 0 {
		triggerEvery = time.Minute
	}
	db, logger := g.db, g.logger
	var wg sync.WaitGroup
	sender := &pipeline.Sender{Store: db, Logger: logger}
	wg.Go(func() { sender.Run(ctx, 5*time.Second) })
	if !work {
		return wg.Wait
	}
	r := g.runner(nil)
	r.Resume = true // a run this worker stops, or finds interrupted, is queued again
	if _, err := r.Recover(ctx); err != nil {
		logger.Error("kiln serve: recovering interrupted runs", "err", err)
	}
	wg.Go(func() {
		// Runs of workers that die elsewhere are found by their stale
		// heartbeat, and resumed here or by another worker.
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := r.Recover(ctx); err != nil && ctx.Err() == nil {
					logger.Error("kiln serve: recovering interrupted runs", "err", err)
				}
			}
		}
	})
	wg.Go(func() { _ = r.Work(ctx) })
	trig := &pipeline.Trigger{Runs: db, Schedules: db, LoadEstate: cli.LoadEstate, Logger: logger, Checker: g.checker(false)}
	wg.Go(func() {
		t := time.NewTicker(triggerEvery)
		defer t.Stop()
		for {
			trig.Estates = watchedEstates(ctx, db, logger)
			if _, err := trig.Tick(ctx); err != nil && ctx.Err() == nil {
				logger.Error("kiln serve: pipeline triggers", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return wg.Wait
}

// watchedEstates are the estates runs were queued from, with the
// variables of the newest run of each.
func watchedEstates(ctx context.Context, db *store.DB, logger *slog.Logger) []pipeline.Estate {
	runs, _, err := db.ListRuns(ctx, kiln.RunFilter{Limit: 1000})
	if err != nil {
		logger.Warn("kiln serve: list runs", "err", err)
		return nil
	}
	seen := map[string]bool{}
	var out []pipeline.Estate
	for _, r := range runs {
		if seen[r.Estate] {
			continue
		}
		seen[r.Estate] = true
		if _, err := os.Stat(r.Estate); err != nil {
			continue
		}
		out = append(out, pipeline.Estate{Dir: r.Estate, Vars: r.Vars})
	}
	return out
}

// pipelineStatus answers /api/v1/status: every image of the watched
// estates, up to date or not and why.
func pipelineStatus(g *graph) func(context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		ch := g.checker(false)
		out := []*pipeline.ImageStatus{}
		for _, e := range watchedEstates(ctx, g.db, g.logger) {
			est, err := cli.LoadEstate(e.Dir, e.Vars)
			if err != nil {
				return nil, err
			}
			sts, err := ch.Check(ctx, est)
			if err != nil {
				return nil, err
			}
			out = append(out, sts...)
		}
		return out, nil
	}
}

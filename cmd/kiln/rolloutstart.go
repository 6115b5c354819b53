package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
)

// startRollouts is kiln serve's rollout host: services' front ends and
// rollouts (POST /api/v1/services/{service}/rollouts) run on this
// machine's platform, each rollout in a goroutine under ctx. When ctx
// ends, a running rollout stops at its next step, destroys the instances
// it was launching and stays recorded as running (or rolling back); the
// instances that serve stay, recorded as the service's members, and
// `kiln rollout SERVICE --resume` continues it. The returned function
// waits until every rollout has stopped. The caller checked that this
// machine has a platform; a server that runs no rollouts (--work) does
// not call it, and its API answers 503 for rollouts.
//
// Every followEvery (0: never) the follower rolls following services out
// to their channel's version when it moved (rollout.Follower); it stops
// with ctx, before the rollouts are waited for.
func startRollouts(ctx context.Context, g *graph, followEvery time.Duration) (api.RolloutHost, func()) {
	h := g.rolloutHost(nil)
	wait := h.Background(ctx)
	warnInterrupted(ctx, g.db, g.logger)
	if followEvery <= 0 {
		return h, wait
	}
	f := &rollout.Follower{Services: g.db, Rollouts: g.db, Channels: g.db, Pauses: g.db, Starter: h, Logger: g.logger}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.Run(ctx, followEvery)
	}()
	return h, func() { <-done; wait() }
}

// warnInterrupted names the rollouts a stopped process left unfinished;
// kiln serve does not resume them by itself, since the process that ran
// one may still be running it (a local `kiln rollout`).
func warnInterrupted(ctx context.Context, db *store.DB, logger *slog.Logger) {
	svcs, err := db.ListServices(ctx)
	if err != nil {
		logger.Warn("kiln serve: list services", "err", err)
		return
	}
	for _, s := range svcs {
		if r, err := db.ActiveRollout(ctx, s.Name); err == nil {
			logger.Warn("kiln serve: a rollout is unfinished; if no process runs it, resume it with `kiln rollout "+s.Name+" --resume`",
				"service", s.Name, "rollout", r.ID, "state", r.State, "batches", r.Batch)
		}
	}
}

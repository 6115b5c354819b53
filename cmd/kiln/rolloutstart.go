package main

import (
	"context"
	"fmt"
	"log/slog"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// startRollouts is kiln serve's rollout host: services' front ends and
// rollouts (POST /api/v1/services/{service}/rollouts) run on this
// machine's platform, each rollout in a goroutine under ctx. When ctx
// ends, a running rollout stops at its next step, destroys the instances
// it was launching and stays recorded as running (or rolling back); the
// instances that serve stay, recorded as the service's members, and
// `kiln rollout SERVICE --resume` continues it. The returned function
// waits until every rollout has stopped. The host is nil, and the API
// answers 503 for rollouts, when this machine cannot run instances.
func startRollouts(ctx context.Context, db *store.DB, signer *sign.Signer, cfg cli.Config, logger *slog.Logger) (api.RolloutHost, func()) {
	arts, err := artifact.Open(cfg.DataDir)
	var plat kiln.Platform
	if err == nil {
		plat, err = local.New(local.Config{DataDir: cfg.DataDir, Artifacts: arts, Logger: logger})
	}
	if err != nil {
		logger.Warn("kiln serve: this process runs no rollouts or front ends (run `kiln rollout` on a machine that can)", "reason", kiln.ErrorMessage(err))
		return nil, func() {}
	}
	h := newRolloutHost(db, arts, plat, signer, cfg, logger)
	wait := h.Background(ctx)
	warnInterrupted(ctx, db, logger)
	return h, wait
}

// newRolloutHost is the rollout host on db and the platform: the engine
// checks each target version's signed provenance before launching it, as
// `kiln rollout` does.
func newRolloutHost(db *store.DB, arts kiln.ArtifactStore, plat kiln.Platform, signer *sign.Signer, cfg cli.Config, logger *slog.Logger) *rollout.Host {
	e := &rollout.Engine{Services: db, Rollouts: db, Registry: db, Platform: plat, Inventory: db, Logger: logger,
		Check: func(ctx context.Context, v *kiln.Version) error {
			if signer == nil {
				return nil
			}
			if err := sign.CheckVersion(ctx, db, arts, signer.Public(), v, false); err != nil {
				return fmt.Errorf("refusing to launch: %w", err)
			}
			return nil
		}}
	return &rollout.Host{Engine: e, Channels: db, DataDir: cfg.DataDir, FrontEnd: cli.FrontEndCommand(cfg)}
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

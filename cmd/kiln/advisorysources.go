package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/feed"
	"github.com/kiln-project/kiln/store"
)

// advisorySourceTick is how often kiln serve looks for advisory sources
// whose interval has passed, unless --sources-every says otherwise.
const advisorySourceTick = time.Minute

// startAdvisorySources syncs due advisory sources in the background (kiln
// serve) and returns the function that stops it and waits; call it before
// db closes. synced is told of every sync that changed a source's
// advisories. It looks for due sources every tick (0: advisorySourceTick).
func startAdvisorySources(ctx context.Context, db *store.DB, cfg cli.Config, logger *slog.Logger, tick time.Duration, synced func(context.Context, *feed.Result)) (stop func()) {
	if tick <= 0 {
		tick = advisorySourceTick
	}
	return feed.Start(ctx, &feed.Syncer{Store: db, TempDir: cfg.DataDir, Logger: logger, Synced: synced}, tick)
}

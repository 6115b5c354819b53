package main

import (
	"context"
	"log/slog"

	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// startHistory records the fleet's daily counts for the dashboard's trends
// now and every hour, and prunes them and rollout samples after 90 days,
// until the returned stop is called (before db closes).
func startHistory(ctx context.Context, db *store.DB, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fleet.New(db, db).RunHistory(ctx, db, db, fleet.HistoryConfig{}, logger)
	}()
	return func() { cancel(); <-done }
}

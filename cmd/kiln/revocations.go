package main

import (
	"context"
	"log/slog"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// revocationEvery is how often kiln serve applies scheduled revocations
// whose time has come (`kiln version revoke IMAGE-N --at TIME`).
const revocationEvery = time.Minute

// startRevocations applies due scheduled revocations now and every
// interval until the returned stop is called (before the database closes;
// stop waits for a pass under way).
func startRevocations(ctx context.Context, r kiln.Revoker, every time.Duration, logger *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			applyDueRevocations(ctx, r, logger)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// applyDueRevocations runs one pass, logging what it revoked; a failure is
// logged and the next pass tries again.
func applyDueRevocations(ctx context.Context, r kiln.Revoker, logger *slog.Logger) {
	revs, err := r.ApplyDueRevocations(ctx)
	if err != nil {
		if ctx.Err() == nil {
			logger.Error("apply scheduled revocations", "err", err)
		}
		return
	}
	for _, rv := range revs {
		if rv.Through == nil {
			logger.Info("scheduled revocation applied", "version", rv.Version.String(), "reason", rv.Reason, "actor", rv.Actor)
		} else {
			logger.Info("revoked through ancestry", "version", rv.Version.String(), "through", rv.Through.String())
		}
	}
}

package feed

import (
	"context"
	"errors"
	"time"

	"github.com/kiln-project/kiln"
)

// SyncDue syncs every source whose interval has passed, one after the
// other, and returns what each did; a failing source is logged and does
// not stop the others.
func (s *Syncer) SyncDue(ctx context.Context) ([]*Result, error) {
	feeds, err := s.Store.ListAdvisoryFeeds(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Result
	now := s.now()
	for _, f := range feeds {
		if !f.Due(now) {
			continue
		}
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		res, err := s.Sync(ctx, f)
		if err != nil {
			if s.Logger != nil && !errors.Is(err, context.Canceled) {
				s.Logger.WarnContext(ctx, "advisory source sync failed; its previous advisories are kept", "source", f.Name, "err", err)
			}
			continue
		}
		if s.Logger != nil {
			s.Logger.InfoContext(ctx, "advisory source synced", "source", f.Name, "not_modified", res.NotModified,
				"advisories", res.Read, "new", res.Created, "replaced", res.Updated, "removed", res.Removed)
		}
		out = append(out, res)
		if s.Synced != nil && !res.NotModified && res.Created+res.Updated+res.Removed > 0 {
			s.Synced(ctx, res)
		}
	}
	return out, nil
}

// Run syncs due sources every tick until ctx ends (kiln serve).
func (s *Syncer) Run(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if _, err := s.SyncDue(ctx); err != nil && ctx.Err() == nil && s.Logger != nil {
			s.Logger.WarnContext(ctx, "advisory sources: cannot list them", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Start runs Run in the background and returns the function that stops it
// and waits for it (call it before the store closes).
func Start(ctx context.Context, s *Syncer, tick time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(kiln.WithActor(ctx, "kiln serve (advisory sources)"), tick)
	}()
	return func() { cancel(); <-done }
}

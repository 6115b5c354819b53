package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
)

// Service computes fleet reports from a store.
type Service struct {
	Fleet      kiln.Fleet
	Advisories kiln.AdvisoryStore
	Clock      kiln.Clock
	// DefaultRelease is the Debian release assumed for versions whose
	// provenance does not say (no Debian origin up their base chain).
	DefaultRelease string
	// Channels, when set, makes an environment's channel version the one
	// its instances should run (stale report); nil: the latest ready.
	Channels kiln.ChannelStore
	// Include says which states of Debian's triage count as exposed
	// (nil: advisory.DefaultInclude, what Debian ships a DSA/DLA for).
	Include advisory.Include
}

// New returns a Service on fl and advs with the wall clock and bookworm as
// the default release; set Channels for channel-aware stale reports.
func New(fl kiln.Fleet, advs kiln.AdvisoryStore) *Service {
	return &Service{Fleet: fl, Advisories: advs, Clock: time.Now, DefaultRelease: "bookworm"}
}

func (s *Service) now() time.Time {
	if s.Clock == nil {
		return time.Now().UTC()
	}
	return s.Clock().UTC()
}

// Report is the fleet report for env ("" for all environments).
func (s *Service) Report(ctx context.Context, env string) (*kiln.Report, error) {
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, fmt.Errorf("fleet report: %w", err)
	}
	ps, err := s.Fleet.AgePolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet report: %w", err)
	}
	return BuildReport(us, ps, s.now(), env), nil
}

// Overage lists instances in env ("" for all) whose version is older than
// maxAge, or, when maxAge is 0, than their environment's age policy.
func (s *Service) Overage(ctx context.Context, maxAge kiln.Age, env string) (*kiln.Overage, error) {
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, fmt.Errorf("fleet overage: %w", err)
	}
	var ps []*kiln.AgePolicy
	if maxAge == 0 {
		if ps, err = s.Fleet.AgePolicies(ctx); err != nil {
			return nil, fmt.Errorf("fleet overage: %w", err)
		}
		if len(ps) == 0 {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "max-age", "no age limit given and no age policies set; pass --max-age 90d or set one with `kiln policy set-max-age --env prod 90d`")
		}
	}
	return BuildOverage(us, maxAge, ps, s.now(), env), nil
}

// Stale lists instances in env ("" for all) older than their image's
// latest ready version.
func (s *Service) Stale(ctx context.Context, env string) (*kiln.Stale, error) {
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, fmt.Errorf("fleet stale: %w", err)
	}
	ch, err := s.channels(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet stale: %w", err)
	}
	return BuildStaleFor(us, env, ch), nil
}

// MarkLost marks instances not seen for longer than after as lost.
func (s *Service) MarkLost(ctx context.Context, after time.Duration) (int, error) {
	if after <= 0 {
		return 0, kiln.FieldErrorf(kiln.EINVALID, "after", "the time after which an instance is lost must be positive, e.g. 24h")
	}
	return s.Fleet.MarkLost(ctx, s.now().Add(-after))
}

// RunMarkLost marks lost instances every interval until ctx ends; kiln
// serve runs it. Failures are logged and retried at the next tick.
func (s *Service) RunMarkLost(ctx context.Context, after, interval time.Duration, log interface {
	InfoContext(context.Context, string, ...any)
	WarnContext(context.Context, string, ...any)
}) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := s.MarkLost(ctx, after)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "marking lost instances failed", "err", err)
		case n > 0:
			log.InfoContext(ctx, "marked instances lost", "count", n, "not_seen_for", after)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

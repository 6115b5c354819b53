package fleet

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
)

// Severity ranks of advisory.SeverityRank that the trend counts use.
const (
	rankLow      = 1
	rankMedium   = 2
	rankHigh     = 3
	rankCritical = 4
)

// BuildSnapshot counts the fleet of each environment in us (usage rows of
// every environment) for the trend charts, with the report's own
// functions: Instances and OverAge are what BuildReport gives for that
// environment (the fleet report's and GET /api/v1/fleet/report's totals),
// OnLatest the instances on their image's latest ready version, and
// Exposed the instances on versions ranked by exposure (the highest
// severity rank of an advisory the version is exposed to; see
// ExposureRanks).
func BuildSnapshot(us []*kiln.Usage, policies []*kiln.AgePolicy, ranks map[kiln.VersionRef]int, now time.Time) []*kiln.FleetCount {
	byEnv := map[string][]*kiln.Usage{}
	var envs []string
	for _, u := range us {
		if _, seen := byEnv[u.Environment]; !seen {
			envs = append(envs, u.Environment)
		}
		byEnv[u.Environment] = append(byEnv[u.Environment], u)
	}
	slices.Sort(envs)
	day := kiln.Day(now)
	out := make([]*kiln.FleetCount, 0, len(envs))
	for _, env := range envs {
		rows := byEnv[env]
		rep := BuildReport(rows, policies, now, env)
		c := &kiln.FleetCount{Day: day, Environment: env, Instances: rep.Instances, OverAge: rep.OverAge}
		for _, u := range rows {
			if u.LatestReady > 0 && u.Number == u.LatestReady {
				c.OnLatest += u.Instances
			}
			r := ranks[u.Ref()]
			if r >= rankLow {
				c.Exposed.Low += u.Instances
			}
			if r >= rankMedium {
				c.Exposed.Medium += u.Instances
			}
			if r >= rankHigh {
				c.Exposed.High += u.Instances
			}
			if r >= rankCritical {
				c.Exposed.Critical += u.Instances
			}
		}
		out = append(out, c)
	}
	return out
}

// ImageLevelRank is the severity rank given to exposure by an image-level
// statement ("fixed in appserver-3") whose advisory names no package
// severity: a person wrote that those versions must be rebuilt, so it
// counts at every level.
const ImageLevelRank = rankCritical

// ExposureRanks ranks every version in us by exposure: the highest
// severity rank (advisory.SeverityRank) among the advisories it is exposed
// to, decided as ExposedTo decides for one advisory: an advisory's
// fixed-in versions decide for the images they name, its package entries
// (matched against each version's manifest, in the version's Debian
// release) for every other image. Versions exposed to nothing are absent.
// It reads every stored advisory whole, so it costs in proportion to the
// advisory database; kiln serve runs it in the background.
func (s *Service) ExposureRanks(ctx context.Context, us []*kiln.Usage) (map[kiln.VersionRef]int, error) {
	var advs []*kiln.Advisory
	for offset := 0; ; {
		page, total, err := s.Advisories.ListAdvisories(ctx, kiln.AdvisoryFilter{Limit: 1000, Offset: offset})
		if err != nil {
			return nil, fmt.Errorf("exposure ranks: %w", err)
		}
		for _, a := range page {
			if !a.Withdrawn.IsZero() {
				continue
			}
			full, err := s.Advisories.FindAdvisory(ctx, a.ID)
			if err != nil {
				return nil, fmt.Errorf("exposure ranks: %w", err)
			}
			advs = append(advs, full)
		}
		offset += len(page)
		if len(page) == 0 || offset >= total {
			break
		}
	}
	ranks := map[kiln.VersionRef]int{}
	raise := func(r kiln.VersionRef, rank int) {
		if rank > ranks[r] {
			ranks[r] = rank
		}
	}
	// Image-level statements.
	named := map[string]map[string]bool{} // advisory id → images it names
	var names []string
	var pkgAdvs []*kiln.Advisory
	for _, a := range advs {
		rank := ImageLevelRank
		if len(a.Packages) > 0 {
			rank = 0
			for _, p := range a.Packages {
				rank = max(rank, advisory.SeverityRank(p.Severity))
			}
			pkgAdvs = append(pkgAdvs, a)
			for _, p := range a.Packages {
				names = append(names, p.Name)
			}
		}
		fixed := map[string]int{}
		named[a.ID] = map[string]bool{}
		for _, f := range a.FixedIn {
			fixed[f.Image] = f.Number
			named[a.ID][f.Image] = true
		}
		for _, u := range us {
			if n, ok := fixed[u.Image]; ok && u.Number < n {
				raise(u.Ref(), rank)
			}
		}
	}
	if len(pkgAdvs) == 0 {
		return ranks, nil
	}
	// Package entries, against the manifests of the images no fixed-in
	// statement of the same advisory names.
	slices.Sort(names)
	ms, err := s.Fleet.Manifests(ctx, slices.Compact(names))
	if err != nil {
		return nil, fmt.Errorf("exposure ranks: %w", err)
	}
	byRef := make(map[kiln.VersionRef]*kiln.PackageManifest, len(ms))
	for _, m := range ms {
		byRef[m.Version] = m
	}
	inUse := map[kiln.VersionRef]bool{}
	for _, u := range us {
		inUse[u.Ref()] = true
	}
	indexes := map[string]*advisory.Index{}
	for _, m := range ms {
		if !inUse[m.Version] {
			continue
		}
		rel, ok := Release(m, byRef)
		if !ok {
			rel = s.DefaultRelease
		}
		rel = advisory.Release(rel)
		ix := indexes[rel]
		if ix == nil {
			if ix, err = advisory.NewIndex(pkgAdvs, rel); err != nil {
				return nil, fmt.Errorf("exposure ranks: %w", err)
			}
			indexes[rel] = ix
		}
		for _, f := range advisory.Affected(ix.Match(m.Packages, Sources(m.Packages))) {
			if named[f.Advisory][m.Version.Image] {
				continue
			}
			raise(m.Version, advisory.SeverityRank(f.Severity))
		}
	}
	return ranks, nil
}

// Snapshot counts the fleet of every environment now (BuildSnapshot).
func (s *Service) Snapshot(ctx context.Context) ([]*kiln.FleetCount, error) {
	us, err := s.Fleet.Usage(ctx, kiln.UsageFilter{})
	if err != nil {
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	ps, err := s.Fleet.AgePolicies(ctx)
	if err != nil {
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	ranks, err := s.ExposureRanks(ctx, us)
	if err != nil {
		return nil, fmt.Errorf("fleet snapshot: %w", err)
	}
	return BuildSnapshot(us, ps, ranks, s.now()), nil
}

// HistoryConfig says how often kiln serve records the fleet's counts and
// how long it keeps them.
type HistoryConfig struct {
	// Every is the time between recordings (DefaultHistoryEvery when 0);
	// each replaces the current day's counts, so a day keeps its last.
	Every time.Duration
	// Keep is how long counts and rollout samples are kept
	// (DefaultHistoryKeep when 0).
	Keep time.Duration
}

// History defaults.
const (
	DefaultHistoryEvery = time.Hour
	DefaultHistoryKeep  = 90 * 24 * time.Hour
)

// RecordHistory records today's counts into h and prunes counts (and,
// when tl is set, rollout samples) older than keep.
func (s *Service) RecordHistory(ctx context.Context, h kiln.FleetHistory, tl kiln.RolloutTimeline, keep time.Duration) ([]*kiln.FleetCount, error) {
	cs, err := s.Snapshot(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	if err := h.RecordSnapshot(ctx, now, cs); err != nil {
		return nil, err
	}
	cutoff := now.Add(-keep)
	if _, err := h.PruneSnapshots(ctx, cutoff); err != nil {
		return nil, err
	}
	if tl != nil {
		if _, err := tl.PruneRolloutSamples(ctx, cutoff); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// RunHistory records the fleet's counts at once and then every cfg.Every
// until ctx ends; kiln serve runs it. Failures are logged and retried at
// the next tick.
func (s *Service) RunHistory(ctx context.Context, h kiln.FleetHistory, tl kiln.RolloutTimeline, cfg HistoryConfig, log interface {
	InfoContext(context.Context, string, ...any)
	WarnContext(context.Context, string, ...any)
}) {
	if cfg.Every <= 0 {
		cfg.Every = DefaultHistoryEvery
	}
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultHistoryKeep
	}
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for {
		t0 := time.Now()
		cs, err := s.RecordHistory(ctx, h, tl, cfg.Keep)
		switch {
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "recording the fleet history failed", "err", err)
		case err == nil:
			log.InfoContext(ctx, "recorded the fleet history", "environments", len(cs), "took", time.Since(t0).Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

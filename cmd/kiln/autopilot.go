package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/autopilot"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/feed"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/web"
)

// autopilotTick is how often kiln serve looks for advisories exposing
// environments with refresh { auto = true } besides after every sync that
// changed a source (advisories imported by hand, new instances), unless
// --autopilot-every says otherwise.
const autopilotTick = 5 * time.Minute

// autopilotKick is the channel advisory sources signal a changed sync on;
// one pending signal is enough.
type autopilotKick chan string

func (k autopilotKick) synced(_ context.Context, res *feed.Result) {
	select {
	case k <- "advisory source " + res.Source + " synced":
	default:
	}
}

// startAutopilot runs the automatic refresh (package autopilot) until ctx
// ends, after each kick and every autopilotTick; it needs this machine's
// rollout host (nil: none, and it says so). It checks every tick (0:
// autopilotTick). The returned function waits for it to stop.
func startAutopilot(ctx context.Context, g *graph, host api.RolloutHost, kick autopilotKick, tick time.Duration) func() {
	if host == nil {
		return func() {}
	}
	if tick <= 0 {
		tick = autopilotTick
	}
	db, logger := g.db, g.logger
	progress := autopilot.LogWriter{Logger: logger, Msg: "autopilot"}
	fl := fleet.New(db, db)
	fl.Channels = db
	plan := &rollout.Refresh{Services: db, Registry: db, Inventory: db, Advisories: db, Fleet: db, Channels: db, Exposure: fl}
	a := &autopilot.Auto{
		Estates:    func(ctx context.Context) []pipeline.Estate { return autopilotEstates(ctx, db, logger) },
		LoadEstate: cli.LoadEstate, Fleet: db, Registry: db, Advisories: db, Audit: db, Services: db, Logger: logger,
		DefaultRelease: fl.DefaultRelease, // as `kiln fleet exposed` and the refresh plan match versions that name no release
		Refresher: func(e pipeline.Estate) *autopilot.Refresher {
			return &autopilot.Refresher{Plan: plan, Runs: db, Progress: progress,
				StartRuns: autopilot.EstateRuns(db, cli.LoadEstate, e.Dir, e.Vars),
				Wait:      autopilot.PollRuns(db, 5*time.Second, progress),
				Roll:      autopilot.FollowRollouts(host, 2*time.Second, progress),
				// The follower's window and limit govern these rollouts too.
				Policy: &rollout.Policy{Services: db, Rollouts: db},
				Paused: func(ctx context.Context, service string) (string, bool) {
					p, err := db.FindPause(ctx, kiln.PauseService, service)
					if err != nil {
						return "", false
					}
					return fmt.Sprintf("paused by %s since %s: %s (`kiln service resume %s`)", p.Actor, p.At.UTC().Format(time.RFC3339), p.Reason, service), true
				}}
		},
		Paused: func(ctx context.Context, env string) (bool, error) {
			_, err := db.FindPause(ctx, kiln.PauseEnvironment, env)
			if kiln.ErrorCode(err) == kiln.ENOTFOUND {
				return false, nil
			}
			return err == nil, err
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(tick)
		defer t.Stop()
		why := "kiln serve started"
		for {
			if _, err := a.Check(ctx, why); err != nil && ctx.Err() == nil {
				logger.Error("autopilot", "err", err)
			}
			// A rollout held back for its window or limit is checked for
			// when the wait ends, not up to a tick later.
			var wake <-chan time.Time
			var timer *time.Timer
			if at := a.Wake(); !at.IsZero() {
				timer = time.NewTimer(time.Until(at))
				wake = timer.C
			}
			select {
			case <-ctx.Done():
			case why = <-kick:
			case <-t.C:
				why = "periodic check"
			case <-wake:
				why = "a held-back rollout's window opened or limit freed"
			}
			if timer != nil {
				timer.Stop()
			}
			if ctx.Err() != nil {
				return
			}
		}
	}()
	return func() { <-done }
}

// autopilotEstates are the estates whose environment blocks the autopilot
// reads: those runs were queued from and the registered ones.
func autopilotEstates(ctx context.Context, db *store.DB, logger *slog.Logger) []pipeline.Estate {
	out := watchedEstates(ctx, db, logger)
	es, err := db.ListEstates(ctx)
	if err != nil {
		logger.Warn("autopilot: list estates", "err", err)
		return out
	}
	for _, e := range es {
		known := false
		for _, w := range out {
			known = known || w.Dir == e.Dir
		}
		if _, err := os.Stat(e.Dir); err == nil && !known {
			out = append(out, pipeline.Estate{Dir: e.Dir})
		}
	}
	return out
}

// dashboardAutoRefresh lists, for the dashboard's services page, the
// environments the autopilot refreshes: those with refresh { auto = true }
// in the estates it reads (the first estate read decides, as for the
// autopilot). An estate that does not load is left out, and logged.
func dashboardAutoRefresh(db *store.DB, logger *slog.Logger) func(ctx context.Context) ([]web.AutoRefresh, error) {
	return func(ctx context.Context) ([]web.AutoRefresh, error) {
		var out []web.AutoRefresh
		seen := map[string]bool{}
		for _, e := range autopilotEstates(ctx, db, logger) {
			est, err := cli.LoadEstate(e.Dir, e.Vars)
			if err != nil {
				logger.Warn("dashboard: cannot read estate", "estate", e.Dir, "err", err)
				continue
			}
			for _, env := range est.AutoRefresh() {
				if seen[env.Name] {
					continue
				}
				seen[env.Name] = true
				out = append(out, web.AutoRefresh{Environment: env.Name, MinSeverity: env.Refresh.MinSeverity, Include: env.Refresh.Include,
					Where: fmt.Sprintf("%s:%d", env.File, env.Refresh.Range.Start.Line)})
			}
		}
		return out, nil
	}
}

// dashboardFollowStatus is the services pages' view of what kiln serve's
// follower does for a service (waiting for its window until …).
func dashboardFollowStatus(db *store.DB) func(ctx context.Context, s *kiln.Service) (*web.FollowState, error) {
	f := &rollout.Follower{Services: db, Rollouts: db, Channels: db, Pauses: db}
	return func(ctx context.Context, s *kiln.Service) (*web.FollowState, error) {
		st, err := f.Status(ctx, s)
		if err != nil {
			return nil, err
		}
		return &web.FollowState{State: st.State, Detail: st.Detail, Until: st.Until}, nil
	}
}

// apiFollowStatus is the API's view of what kiln serve's follower does
// for a service (GET /api/v1/services/{service}/policy).
func apiFollowStatus(db *store.DB) func(ctx context.Context, s *kiln.Service) (*api.FollowState, error) {
	f := &rollout.Follower{Services: db, Rollouts: db, Channels: db, Pauses: db}
	return func(ctx context.Context, s *kiln.Service) (*api.FollowState, error) {
		st, err := f.Status(ctx, s)
		if err != nil {
			return nil, err
		}
		out := &api.FollowState{State: st.State, Detail: st.Detail, Until: st.Until, NextWindow: st.NextWindow}
		if !st.Channel.IsZero() {
			out.Channel = st.Channel.String()
		}
		return out, nil
	}
}

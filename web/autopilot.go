package web

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// AutoRefresh is an environment whose estate asks kiln serve to refresh
// it by itself (refresh { auto = true }), for the services page.
type AutoRefresh struct {
	Environment string
	// MinSeverity is the lowest severity that starts a refresh; Include
	// the finding states that count besides affected (empty: Debian's
	// default).
	MinSeverity string
	Include     []string
	// Where is the block's file:line.
	Where string
}

// FollowState is what kiln serve's follower does for a service now
// (rollout.FollowStatus, which cmd/kiln converts).
type FollowState struct {
	// State is not-following, no-channel, up-to-date, rolling-out, held,
	// waiting-window, waiting-limit, due, paused or pending. A wait is the
	// follower's for a channel move or the autopilot's for a rollout it
	// holds back (kiln.Service.Pending); Detail says which.
	State string
	// Detail explains State in a sentence.
	Detail string
	// Until is when a wait ends (the window opens, the limit frees).
	Until time.Time
}

// Words is State for a table cell; Until, when set, follows it.
func (f *FollowState) Words() string {
	switch f.State {
	case "waiting-window":
		return "waiting for its update window"
	case "waiting-limit":
		return "waiting for the rollout limit"
	case "up-to-date":
		return "up to date"
	case "rolling-out":
		return "rolling out"
	case "held":
		return "held: the last rollout to the channel version did not stay"
	case "due":
		return "due: rolls out at the follower's next pass"
	case "no-channel":
		return "no channel version yet"
	case "not-following":
		return "not following"
	case "pending":
		return "pending: the autopilot starts its held-back rollout at its next check"
	}
	return f.State
}

// serviceRow is a service with its pauses, as the services pages show it.
type serviceRow struct {
	*kiln.Service
	Last *kiln.Rollout
	// Pause and EnvPause are the service's and its environment's pauses
	// (nil: none).
	Pause, EnvPause *kiln.Pause
	// Status is what kiln serve's follower does for it now; nil when the
	// server does not say.
	Status *FollowState
}

// Follows says what moves the service: its channel, or only a person.
func (r serviceRow) Follows() string {
	if r.Following() {
		return fmt.Sprintf("the %s channel", r.Environment)
	}
	return "none (kiln rollout, or the autopilot's refresh)"
}

// PolicyItems are the service's rollout policy and batch, in words.
func (r serviceRow) PolicyItems() []string {
	var out []string
	if w := r.Policy.Window; w != nil {
		out = append(out, "window "+w.String())
	} else {
		out = append(out, "any time")
	}
	if l := r.Policy.Limit; l != nil {
		out = append(out, fmt.Sprintf("at most %d rollouts per %s in %s", l.Count, kiln.ShortDuration(l.Per), r.Environment))
	}
	out = append(out, fmt.Sprintf("batches of %d, surge %d, bake %s", r.Batch(), r.MaxSurge, r.BakeTime))
	if g := r.Policy.Gate; g != nil {
		out = append(out, "gate "+g.String())
	}
	return out
}

// envRow is an environment on the services page: its services, its
// automatic refresh and its pause.
type envRow struct {
	Name     string
	Services int
	Auto     *AutoRefresh
	Pause    *kiln.Pause
}

// autopilotRows reads the pauses and the automatic refreshes (each
// optional) and returns the services' rows and the environments'.
func (s *Server) autopilotRows(ctx context.Context, svcs []*kiln.Service, last map[string]*kiln.Rollout) ([]serviceRow, []envRow, error) {
	paused := map[kiln.PauseKind]map[string]*kiln.Pause{kiln.PauseService: {}, kiln.PauseEnvironment: {}}
	if s.cfg.Pauses != nil {
		ps, err := s.cfg.Pauses.ListPauses(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, p := range ps {
			if paused[p.Kind] != nil {
				paused[p.Kind][p.Name] = p
			}
		}
	}
	envs := map[string]*envRow{}
	env := func(name string) *envRow {
		if envs[name] == nil {
			envs[name] = &envRow{Name: name, Pause: paused[kiln.PauseEnvironment][name]}
		}
		return envs[name]
	}
	rows := make([]serviceRow, 0, len(svcs))
	for _, svc := range svcs {
		row := serviceRow{Service: svc, Last: last[svc.Name], Pause: paused[kiln.PauseService][svc.Name],
			EnvPause: paused[kiln.PauseEnvironment][svc.Environment]}
		if s.cfg.FollowStatus != nil {
			st, err := s.cfg.FollowStatus(ctx, svc)
			if err != nil {
				return nil, nil, fmt.Errorf("follow status of service %s: %w", svc.Name, err)
			}
			row.Status = st
		}
		rows = append(rows, row)
		env(svc.Environment).Services++
	}
	for name := range paused[kiln.PauseEnvironment] {
		env(name)
	}
	if s.cfg.AutoRefresh != nil {
		ars, err := s.cfg.AutoRefresh(ctx)
		if err != nil {
			return nil, nil, err
		}
		for i := range ars {
			if e := env(ars[i].Environment); e.Auto == nil {
				e.Auto = &ars[i]
			}
		}
	}
	out := make([]envRow, 0, len(envs))
	for _, e := range envs {
		out = append(out, *e)
	}
	slices.SortFunc(out, func(a, b envRow) int { return strings.Compare(a.Name, b.Name) })
	return rows, out, nil
}

package rollout

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kiln-project/kiln"
)

// Policy decides whether a service's rollout policy lets kiln serve start
// a rollout of it now: its update window must be open and its
// environment's rollout limit not reached. The follower (a channel move)
// and the autopilot (a refresh for an advisory) both ask it, so the
// rollouts kiln serve starts wait alike whichever loop decided them. A
// person's rollout (`kiln rollout`, `kiln fleet refresh --apply`) does
// not ask: it is an operator's decision, and it counts against the limit.
type Policy struct {
	Services kiln.ServiceStore
	Rollouts kiln.RolloutStore
}

// Wait is why a service's rollout policy holds a rollout back.
type Wait struct {
	// State is FollowWaitingWindow or FollowWaitingLimit.
	State string `json:"state"`
	// Until is when the window opens or the limit frees; the rollout may
	// start at the first look after it.
	Until time.Time `json:"until"`
	// Reason says it after the version that waits: "waiting for its
	// update window (mon-fri 02:00-05:00 Europe/Berlin), which opens …".
	Reason string `json:"reason"`
}

// Wait returns nil when svc's policy lets a rollout start at now, else
// why it waits and until when. The window is judged first: a rollout
// outside it waits for it even when the limit would let it start.
func (p Policy) Wait(ctx context.Context, svc *kiln.Service, now time.Time) (*Wait, error) {
	if w := svc.Policy.Window; w != nil {
		if next := w.Next(now); !next.Equal(now) {
			return &Wait{State: FollowWaitingWindow, Until: next,
				Reason: fmt.Sprintf("waiting for its update window (%s), which opens %s", w, next.Format(time.RFC3339))}, nil
		}
	}
	if l := svc.Policy.Limit; l != nil {
		until, n, err := p.limited(ctx, svc, l, now)
		if err != nil {
			return nil, err
		}
		if !until.IsZero() {
			return &Wait{State: FollowWaitingLimit, Until: until,
				Reason: fmt.Sprintf("waiting: %d rollouts in %s within %s (limit %s); the next may start %s",
					n, svc.Environment, kiln.ShortDuration(l.Per), l, until.Format(time.RFC3339))}, nil
		}
	}
	return nil, nil
}

// limited returns when the environment's limit lets the next rollout
// start (zero: now) and how many rollouts count against it: those of
// every service in the environment, started by anyone, in the last
// l.Per.
func (p Policy) limited(ctx context.Context, svc *kiln.Service, l *kiln.RolloutLimit, now time.Time) (time.Time, int, error) {
	all, err := p.Services.ListServices(ctx)
	if err != nil {
		return time.Time{}, 0, err
	}
	since := now.Add(-l.Per)
	var starts []time.Time
	for _, s := range all {
		if s.Environment != svc.Environment {
			continue
		}
		rs, err := p.Rollouts.ListRollouts(ctx, s.Name, l.Count+1)
		if err != nil {
			return time.Time{}, 0, err
		}
		for _, r := range rs {
			if r.StartedAt.After(since) {
				starts = append(starts, r.StartedAt)
			}
		}
	}
	if len(starts) < l.Count {
		return time.Time{}, len(starts), nil
	}
	// The Count-th newest start must leave the period first.
	slices.SortFunc(starts, func(a, b time.Time) int { return b.Compare(a) })
	return starts[l.Count-1].Add(l.Per), len(starts), nil
}

package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
)

// FollowActor is who kiln serve's follower starts rollouts as.
const FollowActor = "kiln serve (follow)"

// Follower is the loop of kiln serve that keeps following services on
// their channel: when the channel of a service's image in its environment
// points at a version other than the one the follower last acted on (a
// pipeline delivery, `kiln promote`, a channel rollback), it starts the
// service's rollout to it, inside the service's update window and under
// its environment's rollout limit. Everything it decides from is in the
// store (the channel, the service's Followed version, the rollouts), so a
// channel that moved while kiln serve was down is acted on when it starts.
//
// It never starts a second rollout of a service: one in progress (here or
// in another process) makes it wait, and the Host and the store refuse a
// second one anyway.
type Follower struct {
	Services kiln.ServiceStore
	Rollouts kiln.RolloutStore
	Channels kiln.ChannelStore
	// Starter starts rollouts: kiln serve's background Host.
	Starter kiln.RolloutStarter
	// Pauses, when set, stop the follower for a paused service or
	// environment (`kiln service pause`, `kiln env pause`) until resumed.
	Pauses kiln.PauseStore
	// Clock is the time windows are judged by; nil is time.Now.
	Clock  func() time.Time
	Logger *slog.Logger

	mu     sync.Mutex
	waited map[string]string // service → the last wait logged, so a wait is logged once
}

// FollowStatus says what the follower does about one service now.
type FollowStatus struct {
	Service string `json:"service"`
	// At is when the status was decided.
	At time.Time `json:"at"`
	// Following is false for a service created with --follow none.
	Following bool `json:"following"`
	// Channel is the version the service's channel points at (zero when
	// the environment's channel holds no version of its image).
	Channel kiln.VersionRef `json:"channel,omitzero"`
	// State is one of: not-following, no-channel, up-to-date, rolling-out,
	// held (the rollout to the channel version did not succeed; the next
	// channel move is rolled out again), waiting-window,
	// waiting-limit, due (a rollout starts at the next pass), paused,
	// pending (the autopilot's held-back rollout may start now). The
	// waits are the follower's for a channel move, or the autopilot's for
	// the rollout it holds back (Service.Pending); Detail says which.
	State string `json:"state"`
	// Detail explains State in a sentence.
	Detail string `json:"detail"`
	// Until is when a wait ends (window opens, limit frees), else zero.
	Until time.Time `json:"until,omitzero"`
	// NextWindow is when the update window next opens (now when open);
	// zero without a window.
	NextWindow time.Time `json:"next_window,omitzero"`
}

// Follow states.
const (
	FollowNotFollowing  = "not-following"
	FollowNoChannel     = "no-channel"
	FollowUpToDate      = "up-to-date"
	FollowRollingOut    = "rolling-out"
	FollowHeld          = "held"
	FollowWaitingWindow = "waiting-window"
	FollowWaitingLimit  = "waiting-limit"
	FollowDue           = "due"
	FollowPaused        = "paused"
	// FollowPending: the autopilot's rollout (Service.Pending) is no
	// longer held back by the policy; the autopilot starts it at its next
	// check.
	FollowPending = "pending"
)

func (f *Follower) now() time.Time {
	if f.Clock != nil {
		return f.Clock()
	}
	return time.Now()
}

func (f *Follower) log() *slog.Logger {
	if f.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Logger
}

// Status decides what the follower does about svc at the follower's now,
// without doing it.
func (f *Follower) Status(ctx context.Context, svc *kiln.Service) (*FollowStatus, error) {
	now := f.now()
	st := &FollowStatus{Service: svc.Name, At: now, Following: svc.Following()}
	if w := svc.Policy.Window; w != nil {
		st.NextWindow = w.Next(now)
	}
	ch, err := f.Channels.FindChannel(ctx, svc.Image, svc.Environment)
	switch kiln.ErrorCode(err) {
	case "":
		st.Channel = ch.Version
	case kiln.ENOTFOUND, kiln.ECONFLICT:
	default:
		return nil, err
	}
	pending := svc.Pending != nil && !reached(svc.Version, svc.Pending.To)
	if !st.Following && !pending {
		st.State, st.Detail = FollowNotFollowing, "created with --follow none: no channel move rolls it out; `kiln rollout "+svc.Name+"` does, and the autopilot's refresh for an advisory (refresh { auto = true })"
		return st, nil
	}
	if p, err := f.paused(ctx, svc); err != nil {
		return nil, err
	} else if p != nil {
		st.State = FollowPaused
		st.Detail = fmt.Sprintf("%s %s paused by %s at %s (%s): `kiln %s resume %s` lets kiln serve roll it out again",
			p.Kind, p.Name, p.Actor, p.At.UTC().Format(time.RFC3339), p.Reason, map[kiln.PauseKind]string{kiln.PauseService: "service", kiln.PauseEnvironment: "env"}[p.Kind], p.Name)
		return st, nil
	}
	if pending && (!st.Following || st.Channel.IsZero() || st.Channel == svc.Followed || st.Channel == svc.Version) {
		// Nothing for the follower to do: what waits is the autopilot's.
		return f.pendingStatus(ctx, svc, st)
	}
	if st.Channel.IsZero() {
		st.State, st.Detail = FollowNoChannel, fmt.Sprintf("the %s channel holds no version of %s yet", svc.Environment, svc.Image)
		return st, nil
	}
	if rolling, err := f.rollingOut(ctx, svc, st); err != nil {
		return nil, err
	} else if rolling {
		return st, nil
	}
	if st.Channel == svc.Followed || st.Channel == svc.Version {
		st.State, st.Detail = FollowUpToDate, fmt.Sprintf("runs the %s channel's %s", svc.Environment, st.Channel)
		if st.Channel != svc.Version {
			last, err := f.Rollouts.ListRollouts(ctx, svc.Name, 1)
			if err != nil {
				return nil, err
			}
			st.State, st.Detail = FollowHeld, fmt.Sprintf("the %s channel's %s was rolled out and did not stay; the next channel move is rolled out", svc.Environment, st.Channel)
			if len(last) > 0 && last[0].To == st.Channel {
				st.Detail = fmt.Sprintf("rollout %d to the %s channel's %s ended %s (%s); the next channel move is rolled out, or run `kiln rollout %s`",
					last[0].ID, svc.Environment, st.Channel, last[0].State, last[0].Reason, svc.Name)
			}
		}
		return st, nil
	}
	if w, err := (Policy{Services: f.Services, Rollouts: f.Rollouts}).Wait(ctx, svc, now); err != nil {
		return nil, err
	} else if w != nil {
		st.State, st.Until, st.Detail = w.State, w.Until, st.Channel.String()+" is "+w.Reason
		return st, nil
	}
	st.State, st.Detail = FollowDue, fmt.Sprintf("the %s channel moved to %s; its rollout starts now", svc.Environment, st.Channel)
	return st, nil
}

// paused returns the pause that stops the follower for svc (the
// service's own, else its environment's), nil when none.
func (f *Follower) paused(ctx context.Context, svc *kiln.Service) (*kiln.Pause, error) {
	if f.Pauses == nil {
		return nil, nil
	}
	for _, k := range []struct {
		kind kiln.PauseKind
		name string
	}{{kiln.PauseService, svc.Name}, {kiln.PauseEnvironment, svc.Environment}} {
		p, err := f.Pauses.FindPause(ctx, k.kind, k.name)
		switch kiln.ErrorCode(err) {
		case "":
			return p, nil
		case kiln.ENOTFOUND:
		default:
			return nil, err
		}
	}
	return nil, nil
}

// pendingStatus is the status of a service whose rollout the autopilot
// decided on and holds back (svc.Pending): rolling-out once it started,
// waiting while the policy holds it, pending when the autopilot starts it
// at its next check.
func (f *Follower) pendingStatus(ctx context.Context, svc *kiln.Service, st *FollowStatus) (*FollowStatus, error) {
	p := svc.Pending
	if rolling, err := f.rollingOut(ctx, svc, st); err != nil {
		return nil, err
	} else if rolling {
		return st, nil
	}
	what := fmt.Sprintf("the %s's %s to %s (decided %s)", p.By, p.Why, p.To, p.Since.UTC().Format(time.RFC3339))
	w, err := (Policy{Services: f.Services, Rollouts: f.Rollouts}).Wait(ctx, svc, st.At)
	if err != nil {
		return nil, err
	}
	if w != nil {
		st.State, st.Until, st.Detail = w.State, w.Until, what+" is "+w.Reason
		return st, nil
	}
	st.State, st.Detail = FollowPending, what+" may start now; the "+p.By+" starts it at its next check"
	return st, nil
}

// reached reports whether a service running running has got to (or past)
// version to of the same image: a pending rollout to it is moot.
func reached(running, to kiln.VersionRef) bool {
	return running.Image == to.Image && running.Number >= to.Number
}

// Pass looks at every service once and starts the rollouts that are due;
// it returns the rollouts it started. A service that cannot be looked at
// or rolled out is logged and skipped: the next pass tries again.
func (f *Follower) Pass(ctx context.Context) ([]*kiln.Rollout, error) {
	svcs, err := f.Services.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	var started []*kiln.Rollout
	for _, svc := range svcs {
		if ctx.Err() != nil {
			return started, ctx.Err()
		}
		r, err := f.follow(ctx, svc)
		if err != nil {
			// Logged once per service and error: the next passes try
			// again quietly.
			if f.once(svc.Name, "error "+err.Error()) {
				f.log().Warn("follow: service not rolled out; trying again every pass", "service", svc.Name, "err", err)
			}
			continue
		}
		if r != nil {
			started = append(started, r)
		}
	}
	return started, nil
}

func (f *Follower) follow(ctx context.Context, svc *kiln.Service) (*kiln.Rollout, error) {
	st, err := f.Status(ctx, svc)
	if err != nil {
		return nil, err
	}
	if st.State == FollowUpToDate && st.Channel != svc.Followed {
		// Rolled out by hand (or a channel rollback to what it runs).
		return nil, f.Services.SetServiceFollowed(ctx, svc.Name, st.Channel)
	}
	if st.State != FollowDue {
		if st.State == FollowWaitingWindow || st.State == FollowWaitingLimit {
			f.logWait(svc.Name, st)
		}
		return nil, nil
	}
	f.logWait(svc.Name, nil)
	actx := kiln.WithActor(ctx, FollowActor)
	r, err := f.Starter.StartRollout(actx, kiln.RolloutRequest{Service: svc.Name, To: st.Channel})
	if r == nil {
		if active, aerr := f.Rollouts.ActiveRollout(ctx, svc.Name); aerr == nil && active != nil {
			// A rollout of it started meanwhile (here or elsewhere):
			// the next pass sees it.
			return nil, nil
		}
		return nil, err
	}
	// Recorded once the rollout is: a rollout that does not succeed is
	// not tried again until the channel moves again.
	if ferr := f.Services.SetServiceFollowed(context.WithoutCancel(ctx), svc.Name, st.Channel); ferr != nil {
		return r, ferr
	}
	f.log().Info("follow: channel moved; rollout started", "service", svc.Name, "channel", svc.Environment, "to", st.Channel.String(), "rollout", r.ID)
	return r, err
}

func (f *Follower) logWait(service string, st *FollowStatus) {
	if st == nil {
		f.once(service, "")
		return
	}
	if f.once(service, st.State+" "+st.Channel.String()) {
		f.log().Info("follow: rollout waits", "service", service, "state", st.State, "detail", st.Detail)
	}
}

// once reports whether what is new for service since the last call (""
// forgets it).
func (f *Follower) once(service, what string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.waited == nil {
		f.waited = map[string]string{}
	}
	if f.waited[service] == what {
		return false
	}
	f.waited[service] = what
	return true
}

// Run runs a pass now and every interval until ctx ends.
func (f *Follower) Run(ctx context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if _, err := f.Pass(ctx); err != nil && ctx.Err() == nil {
			f.log().Warn("follow: pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// rollingOut tells whether svc has a rollout in progress, and says so in st.
func (f *Follower) rollingOut(ctx context.Context, svc *kiln.Service, st *FollowStatus) (bool, error) {
	active, err := f.Rollouts.ActiveRollout(ctx, svc.Name)
	if err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
		return false, err
	}
	if active == nil {
		return false, nil
	}
	st.State, st.Detail = FollowRollingOut, fmt.Sprintf("rollout %d to %s is in progress (%s)", active.ID, active.To, active.State)
	return true, nil
}

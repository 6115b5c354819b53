package rollout

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kiln-project/kiln"
)

// defaultSampleEvery is how often a running rollout is sampled for its
// timeline.
const defaultSampleEvery = time.Second

// timeline samples a running rollout for the dashboard's timeline: the
// rollout's state and batch, the service's active members per version and
// its front end's counters, read from the store, and the health checks
// this process made since the last sample. It runs only when the rollout
// store keeps timelines (kiln.RolloutTimeline); a failed sample is logged
// and never stops the rollout.
type timeline struct {
	tl      kiln.RolloutTimeline
	e       *Engine
	id      int64
	service string

	passed, failed atomic.Int64
	poke           chan struct{}
	stop           chan struct{}
	done           chan struct{}
	once           sync.Once
}

type timelineKey struct{}

// startTimeline starts sampling r until finish; the returned context
// carries the timeline so that health checks are counted. Without a
// timeline store it returns ctx and a nil timeline, whose methods do
// nothing.
func (e *Engine) startTimeline(ctx context.Context, r *kiln.Rollout) (context.Context, *timeline) {
	if e.Timeline == nil {
		return ctx, nil
	}
	t := &timeline{tl: e.Timeline, e: e, id: r.ID, service: r.Service,
		poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	every := e.SampleEvery
	if every <= 0 {
		every = defaultSampleEvery
	}
	go t.run(ctx, every)
	return context.WithValue(ctx, timelineKey{}, t), t
}

func timelineFrom(ctx context.Context) *timeline {
	t, _ := ctx.Value(timelineKey{}).(*timeline)
	return t
}

func (t *timeline) run(ctx context.Context, every time.Duration) {
	defer close(t.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	t.sample(ctx)
	for {
		select {
		case <-t.stop:
			return
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-t.poke:
		}
		t.sample(ctx)
	}
}

// health counts one health check's result; a check cut short by the end
// of ctx is not counted.
func (t *timeline) health(ctx context.Context, err error) {
	if t == nil || (err != nil && ctx.Err() != nil) {
		return
	}
	if err == nil {
		t.passed.Add(1)
	} else {
		t.failed.Add(1)
	}
}

// mark takes a sample soon: the rollout changed (a batch ended, it turned
// back).
func (t *timeline) mark() {
	if t == nil {
		return
	}
	select {
	case t.poke <- struct{}{}:
	default:
	}
}

// finish stops the sampling and takes a last sample of how the rollout
// ended, even when ctx is cancelled.
func (t *timeline) finish(ctx context.Context) {
	if t == nil {
		return
	}
	t.once.Do(func() {
		close(t.stop)
		<-t.done
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		t.sample(sctx)
	})
}

func (t *timeline) sample(ctx context.Context) {
	r, err := t.e.Rollouts.FindRollout(ctx, t.id)
	if err != nil {
		t.fail(ctx, err)
		return
	}
	ms, err := t.e.Services.ListMembers(ctx, t.service)
	if err != nil {
		t.fail(ctx, err)
		return
	}
	s := &kiln.RolloutSample{Rollout: t.id, At: time.Now(), State: r.State, Batch: r.Batch}
	for _, m := range ms {
		if m.State != kiln.MemberActive {
			continue
		}
		found := false
		for i := range s.Versions {
			if s.Versions[i].Version == m.Version {
				s.Versions[i].Instances++
				found = true
			}
		}
		if !found {
			s.Versions = append(s.Versions, kiln.VersionCount{Version: m.Version, Instances: 1})
		}
	}
	if st, err := t.e.Services.ProxyStatus(ctx, t.service); err == nil {
		s.Requests, s.Errors, s.FrontEndPID = st.Requests, st.Errors, st.PID
	}
	s.HealthPassed, s.HealthFailed = int(t.passed.Swap(0)), int(t.failed.Swap(0))
	if err := t.tl.RecordRolloutSample(ctx, s); err != nil {
		t.passed.Add(int64(s.HealthPassed))
		t.failed.Add(int64(s.HealthFailed))
		t.fail(ctx, err)
	}
}

func (t *timeline) fail(ctx context.Context, err error) {
	if ctx.Err() == nil {
		t.e.log().Warn("could not sample a rollout for its timeline", "rollout", t.id, "service", t.service, "err", err)
	}
}

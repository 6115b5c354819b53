package rollout

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
)

// followEnv is a kiln serve life for the follower: a background Host on
// the listening in-memory platform, and a Follower on it with a clock the
// test moves.
type followEnv struct {
	*hostEnv
	host *Host
	f    *Follower
	mu   sync.Mutex
	now  time.Time
}

func newFollowEnv(t *testing.T, env *hostEnv, now time.Time) *followEnv {
	t.Helper()
	plat := &listenPlatform{Platform: memory.New()}
	t.Cleanup(plat.close)
	h := &Host{Engine: &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Progress: testWriter{t},
		Launcher:      &launch.Launcher{Registry: env.db, Platform: plat, Inventory: env.db, Key: env.key},
		HealthTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second},
		DataDir: env.dataDir, FrontEnd: func(string) ([]string, []string) { return []string{"/bin/false"}, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.Background(ctx)
	t.Cleanup(func() { cancel(); wait() })
	fe := &followEnv{hostEnv: env, host: h, now: now}
	fe.f = &Follower{Services: env.db, Rollouts: env.db, Channels: env.db, Starter: h, Clock: fe.clock}
	return fe
}

func (fe *followEnv) clock() time.Time {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	return fe.now
}

func (fe *followEnv) set(t time.Time) {
	fe.mu.Lock()
	fe.now = t
	fe.mu.Unlock()
}

// pass runs one follower pass and waits for the rollouts it started; it
// returns the services rolled out, with their rollouts' ends.
func (fe *followEnv) pass(t *testing.T) map[string]*kiln.Rollout {
	t.Helper()
	ctx := opCtx()
	started, err := fe.f.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// While they run, another pass starts nothing more.
	if again, err := fe.f.Pass(ctx); err != nil || len(again) != 0 {
		t.Fatalf("a pass during the rollouts started %v (%v); want none", again, err)
	}
	out := map[string]*kiln.Rollout{}
	deadline := time.Now().Add(time.Minute)
	for _, r := range started {
		if r.StartedBy != FollowActor {
			t.Errorf("rollout %d started by %q, want %q", r.ID, r.StartedBy, FollowActor)
		}
		for {
			p, err := fe.host.RolloutProgress(ctx, r.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !p.Running {
				if p.Error != "" {
					t.Fatalf("rollout %d: %s", r.ID, p.Error)
				}
				out[r.Service] = p.Rollout
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("rollout %d still runs after a minute: %+v", r.ID, p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

func (fe *followEnv) addService(t *testing.T, s *kiln.Service) {
	t.Helper()
	s.Image, s.Replicas = "appserver", 1
	if err := fe.db.CreateService(opCtx(), s); err != nil {
		t.Fatal(err)
	}
	holdFrontEndLock(t, fe.dataDir, s.Name)
	frontEndStandIn(t, fe.hostEnv, s.Name)
}

func (fe *followEnv) status(t *testing.T, service string) *FollowStatus {
	t.Helper()
	svc, err := fe.db.FindService(opCtx(), service)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fe.f.Status(opCtx(), svc)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A channel move — a promotion, a second one, a channel rollback — makes
// the follower roll out the following service and leave the --follow none
// one alone; a move while kiln serve is down is rolled out by the next
// one's first pass.
func TestFollowerRollsFollowingServices(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	frontEndStandIn(t, env, "web")
	fe := newFollowEnv(t, env, time.Now())
	fe.addService(t, &kiln.Service{Name: "pinned", Environment: "prod", Listen: "127.0.0.1:2", Follow: kiln.FollowNone})
	v1 := kiln.VersionRef{Image: "appserver", Number: 1}
	v2 := env.addVersion(t)

	if got := fe.pass(t); len(got) != 0 {
		t.Fatalf("without a channel the follower rolled out %v", got)
	}
	if st := fe.status(t, "web"); st.State != FollowNoChannel {
		t.Errorf("web without a channel: %+v", st)
	}
	promote := func(v kiln.VersionRef) {
		t.Helper()
		if _, err := env.db.Promote(ctx, v, "prod", "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	wantRolled := func(got map[string]*kiln.Rollout, to kiln.VersionRef) {
		t.Helper()
		r := got["web"]
		if len(got) != 1 || r == nil || r.To != to || r.State != kiln.RolloutSucceeded {
			t.Fatalf("after the channel moved to %s the follower rolled out %v; want web only, to %s, succeeded", to, got, to)
		}
		svc, err := env.db.FindService(ctx, "web")
		if err != nil || svc.Version != to || svc.Followed != to {
			t.Fatalf("web after the rollout: %+v %v", svc, err)
		}
		if st := fe.status(t, "web"); st.State != FollowUpToDate || st.Channel != to {
			t.Errorf("web's follow status: %+v", st)
		}
	}

	promote(v1)
	wantRolled(fe.pass(t), v1)
	if got := fe.pass(t); len(got) != 0 {
		t.Fatalf("an unmoved channel rolled out %v", got)
	}
	promote(v2)
	wantRolled(fe.pass(t), v2)
	if _, err := env.db.Rollback(ctx, "appserver", "prod", "bad release", false); err != nil {
		t.Fatal(err)
	}
	wantRolled(fe.pass(t), v1)

	if rs, err := env.db.ListRollouts(ctx, "pinned", 10); err != nil || len(rs) != 0 {
		t.Fatalf("the --follow none service was rolled out: %v %v", rs, err)
	}
	if st := fe.status(t, "pinned"); st.State != FollowNotFollowing || st.Channel != v1 {
		t.Errorf("pinned's follow status: %+v", st)
	}

	// The channel moves while no kiln serve runs; the next one's first
	// pass rolls web out.
	promote(v2)
	next := newFollowEnv(t, env, time.Now())
	wantRolled(next.pass(t), v2)
}

// A paused service, or a service in a paused environment, is not rolled
// out when its channel moves; once resumed, the next pass rolls it out.
func TestFollowerHonoursPauses(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	frontEndStandIn(t, env, "web")
	fe := newFollowEnv(t, env, time.Now())
	fe.f.Pauses = env.db
	if _, err := env.db.Promote(ctx, kiln.VersionRef{Image: "appserver", Number: 1}, "prod", "", "test"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*kiln.Pause{
		{Kind: kiln.PauseService, Name: "web", Reason: "CHG-1: release freeze"},
		{Kind: kiln.PauseEnvironment, Name: "prod", Reason: "CHG-2: datacentre move"},
	} {
		if err := env.db.Pause(ctx, p); err != nil {
			t.Fatal(err)
		}
		if got := fe.pass(t); len(got) != 0 {
			t.Fatalf("with %s %s paused the follower rolled out %v", p.Kind, p.Name, got)
		}
		if st := fe.status(t, "web"); st.State != FollowPaused || !strings.Contains(st.Detail, p.Reason) {
			t.Fatalf("status with %s %s paused: %+v", p.Kind, p.Name, st)
		}
		if err := env.db.Resume(ctx, p.Kind, p.Name); err != nil {
			t.Fatal(err)
		}
	}
	if got := fe.pass(t); got["web"] == nil || got["web"].State != kiln.RolloutSucceeded {
		t.Fatalf("resumed, the follower rolled out %v; want web", got)
	}
}

// Outside its update window a channel move waits, and the rollout starts
// at the first pass once the window has opened.
func TestFollowerWaitsForWindow(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	frontEndStandIn(t, env, "web")
	svc, err := env.db.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	svc.Policy.Window, err = kiln.ParseUpdateWindow("window", "mon-fri 02:00-04:00 America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	if err := env.db.UpdateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	ny, _ := time.LoadLocation("America/New_York")
	saturday := time.Date(2026, 12, 12, 12, 0, 0, 0, ny)
	monday := time.Date(2026, 12, 14, 2, 0, 0, 0, ny)
	fe := newFollowEnv(t, env, saturday)
	if _, err := env.db.Promote(ctx, kiln.VersionRef{Image: "appserver", Number: 1}, "prod", "", "test"); err != nil {
		t.Fatal(err)
	}
	if got := fe.pass(t); len(got) != 0 {
		t.Fatalf("outside the window the follower rolled out %v", got)
	}
	st := fe.status(t, "web")
	if st.State != FollowWaitingWindow || !st.Until.Equal(monday) || !st.NextWindow.Equal(monday) {
		t.Fatalf("status on Saturday: %+v; want waiting for Monday 02:00 New York", st)
	}
	fe.set(monday.Add(-time.Second))
	if got := fe.pass(t); len(got) != 0 {
		t.Fatalf("a second before the window the follower rolled out %v", got)
	}
	fe.set(monday.Add(time.Minute))
	if got := fe.pass(t); got["web"] == nil || got["web"].State != kiln.RolloutSucceeded {
		t.Fatalf("in the window the follower rolled out %v; want web", got)
	}
}

// At most N rollouts per environment per period: of two following
// services in one environment with a limit of one an hour, the second
// waits until an hour after the first started.
func TestFollowerHonoursLimit(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	fe := newFollowEnv(t, env, time.Now())
	limit := kiln.RolloutPolicy{Limit: &kiln.RolloutLimit{Count: 1, Per: time.Hour}}
	fe.addService(t, &kiln.Service{Name: "a", Environment: "staging", Listen: "127.0.0.1:4", Policy: limit})
	fe.addService(t, &kiln.Service{Name: "b", Environment: "staging", Listen: "127.0.0.1:5", Policy: limit})
	if _, err := env.db.Promote(ctx, kiln.VersionRef{Image: "appserver", Number: 1}, "staging", "", "test"); err != nil {
		t.Fatal(err)
	}
	got := fe.pass(t)
	if len(got) != 1 || got["a"] == nil {
		t.Fatalf("first pass rolled out %v; want a only", got)
	}
	if got := fe.pass(t); len(got) != 0 {
		t.Fatalf("second pass rolled out %v; want none (limit 1/1h)", got)
	}
	st := fe.status(t, "b")
	if st.State != FollowWaitingLimit || !st.Until.Equal(got["a"].StartedAt.Add(time.Hour)) {
		t.Fatalf("b's status: %+v; want waiting until an hour after a's rollout began (%s)", st, got["a"].StartedAt)
	}
	fe.set(got["a"].StartedAt.Add(time.Hour + time.Second))
	if got := fe.pass(t); len(got) != 1 || got["b"] == nil {
		t.Fatalf("an hour later the follower rolled out %v; want b", got)
	}
}

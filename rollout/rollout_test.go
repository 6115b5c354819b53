package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// TestRolloutZeroDowntime rolls a service of three instances out from
// nothing to version 1, then under load to version 2, then under load to
// a broken version 3 (its HTTP server has no /healthz) that is rolled back,
// then — interrupted after its first batch — back to version 1, resumed.
// No request through the front end may fail.
func TestRolloutZeroDowntime(t *testing.T) {
	v1 := variant(t, map[string]string{"srv/www/index.html": bodyOf(1), "srv/www/healthz": "ok\n"})
	v2 := variant(t, map[string]string{"srv/www/index.html": bodyOf(2), "srv/www/healthz": "ok\n"})
	broken := variant(t, map[string]string{"srv/www/index.html": bodyOf(3)})
	e := newEnv(t, []string{v1, v2, broken}, 3, 1, time.Second)
	ctx := context.Background()
	ref := func(n int) kiln.VersionRef { return kiln.VersionRef{Image: "appserver", Number: n} }

	t0 := time.Now()
	r, err := e.engine.Start(ctx, "web", ref(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != kiln.RolloutSucceeded {
		t.Fatalf("first rollout: %s (%s)", r.State, r.Reason)
	}
	t.Logf("first rollout (3 instances from nothing): %s", time.Since(t0).Round(time.Millisecond))
	e.wantServing(t, ref(1))

	// Under load, to version 2.
	l := startLoad(e.front, 4, 1_000_000, 3*time.Minute)
	t0 = time.Now()
	r, err = e.engine.Start(ctx, "web", ref(2), Options{})
	took := time.Since(t0)
	l.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rollout to appserver-2: %s in %d batches %v; load: %s; bodies %v", took.Round(time.Millisecond), r.Batch, r.BatchTimes, l, l.bodies)
	if r.State != kiln.RolloutSucceeded {
		t.Fatalf("rollout to 2: %s (%s)", r.State, r.Reason)
	}
	if len(l.failed) > 0 {
		t.Errorf("%d requests failed during the rollout, first: %s", len(l.failed), l.failed[0])
	}
	if l.bodies[bodyOf(1)] == 0 || l.bodies[bodyOf(2)] == 0 {
		t.Errorf("the load saw bodies %v; want both versions during the rollout", l.bodies)
	}
	e.wantServing(t, ref(2))
	e.noInstancesBut(t)

	// Under load, to the broken version: rolled back, nothing fails.
	l = startLoad(e.front, 4, 1_000_000, 3*time.Minute)
	t0 = time.Now()
	r, err = e.engine.Start(ctx, "web", ref(3), Options{})
	took = time.Since(t0)
	l.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("failed rollout to appserver-3: %s, %s; load: %s", r.State, took.Round(time.Millisecond), l)
	if r.State != kiln.RolloutRolledBack || !strings.Contains(r.Reason, "health check") {
		t.Fatalf("rollout to broken version: %s (%s); want rolled-back for a failed health check", r.State, r.Reason)
	}
	if len(l.failed) > 0 {
		t.Errorf("%d requests failed during the failed rollout, first: %s", len(l.failed), l.failed[0])
	}
	if l.bodies[bodyOf(3)] > 0 {
		t.Errorf("the broken version served %d requests", l.bodies[bodyOf(3)])
	}
	e.wantServing(t, ref(2))
	e.noInstancesBut(t)

	// Interrupted after its first batch, then resumed by a new engine.
	cctx, cancel := context.WithCancel(ctx)
	e.engine.Progress = cancelOn{t: t, substr: "batch 1 done", cancel: cancel}
	l = startLoad(e.front, 4, 1_000_000, 3*time.Minute)
	_, err = e.engine.Start(cctx, "web", ref(1), Options{})
	if err == nil || cctx.Err() == nil {
		t.Fatalf("interrupted rollout returned %v", err)
	}
	active, err := e.db.ActiveRollout(ctx, "web")
	if err != nil || active.State != kiln.RolloutRunning {
		t.Fatalf("after the interruption: %+v, %v; want a running rollout", active, err)
	}
	e.engine.Progress = testWriter{t}
	r, err = e.engine.Resume(ctx, "web")
	l.stop()
	if err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("resumed rollout: %+v, %v", r, err)
	}
	if len(l.failed) > 0 {
		t.Errorf("%d requests failed around the interruption, first: %s", len(l.failed), l.failed[0])
	}
	t.Logf("interrupted and resumed rollout to appserver-1: load %s", l)
	e.wantServing(t, ref(1))
	e.noInstancesBut(t)

	// The inventory has the three live instances and the destroyed ones.
	insts, _, err := e.db.ListInstances(ctx, kiln.InstanceFilter{Environment: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 3 {
		t.Errorf("inventory lists %d live instances in prod, want 3", len(insts))
	}
}

// wantServing checks the service's members and what the front end serves.
func (e *env) wantServing(t *testing.T, v kiln.VersionRef) {
	t.Helper()
	ctx := context.Background()
	ms, err := e.db.ListMembers(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != e.svc.Replicas {
		t.Errorf("%d members, want %d", len(ms), e.svc.Replicas)
	}
	for _, m := range ms {
		if m.Version != v || m.State != kiln.MemberActive {
			t.Errorf("member %s: %s %s, want %s active", m.InstanceID, m.Version, m.State, v)
		}
	}
	l := startLoad(e.front, 2, 20, 30*time.Second)
	l.wait()
	if len(l.failed) > 0 || l.bodies[bodyOf(v.Number)] != 20 {
		t.Errorf("front end served %v (failed %v); want 20 × %q", l.bodies, l.failed, bodyOf(v.Number))
	}
}

// cancelOn cancels a context when a progress line contains substr.
type cancelOn struct {
	t      *testing.T
	substr string
	cancel context.CancelFunc
}

func (c cancelOn) Write(b []byte) (int, error) {
	c.t.Log(strings.TrimSpace(string(b)))
	if strings.Contains(string(b), c.substr) {
		c.cancel()
	}
	return len(b), nil
}

package rollout

import (
	"errors"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// TestTimelineSamples: while a rollout runs, its timeline records the
// active members per version, the front end's counters and the health
// checks counted since the previous sample, and a last sample when it
// finishes.
func TestTimelineSamples(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	v1 := kiln.VersionRef{Image: "appserver", Number: 1}
	r := &kiln.Rollout{Service: "web", To: v1}
	if err := env.db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Services: env.db, Rollouts: env.db, Timeline: env.db, SampleEvery: 20 * time.Millisecond}
	tctx, tl := e.startTimeline(ctx, r)
	if tl == nil {
		t.Fatal("the store keeps timelines, but no timeline started")
	}
	for _, id := range []string{"web-a", "web-b"} {
		if err := env.db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: id, Version: v1, State: kiln.MemberActive, Address: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := env.db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: "web-c", Version: v1, State: kiln.MemberLaunching}); err != nil {
		t.Fatal(err)
	}
	if err := env.db.ReportProxy(ctx, &kiln.ProxyStatus{Service: "web", Generation: 2, Backends: 2, Requests: 120, Errors: 3, PID: 42}); err != nil {
		t.Fatal(err)
	}
	timelineFrom(tctx).health(tctx, nil)
	timelineFrom(tctx).health(tctx, nil)
	timelineFrom(tctx).health(tctx, errors.New("connection refused"))
	r.Batch = 1
	if err := env.db.UpdateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	timelineFrom(tctx).mark()
	time.Sleep(100 * time.Millisecond)
	tl.finish(tctx)
	tl.finish(tctx) // twice is harmless

	ss, err := env.db.RolloutSamples(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) < 3 {
		t.Fatalf("%d samples; want one at the start, some while it ran and one at the end", len(ss))
	}
	passed, failed := 0, 0
	for _, s := range ss {
		passed += s.HealthPassed
		failed += s.HealthFailed
	}
	last := ss[len(ss)-1]
	if passed != 2 || failed != 1 {
		t.Errorf("health checks counted %d passed, %d failed; want 2, 1", passed, failed)
	}
	if last.Batch != 1 || last.State != kiln.RolloutRunning || last.Requests != 120 || last.Errors != 3 || last.FrontEndPID != 42 ||
		len(last.Versions) != 1 || last.Versions[0].Instances != 2 {
		t.Errorf("last sample %+v; want batch 1, the proxy's counters, 2 active on %s", *last, v1)
	}
	// Without a timeline store nothing is sampled and nothing breaks.
	var none *timeline
	none.health(ctx, nil)
	none.mark()
	none.finish(ctx)
}

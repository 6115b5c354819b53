package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func newRun(image, trigger string) *kiln.NewRun {
	return &kiln.NewRun{Image: image, Estate: "/estate", Trigger: trigger, Stages: []kiln.Stage{
		{Name: "build", Kind: kiln.StageBuild}, {Name: "test", Kind: kiln.StageTest},
		{Name: "prod", Kind: kiln.StageDeliver, Environment: "prod", Gate: kiln.GateApproval},
	}}
}

func TestRunQueueCoalesceClaimFinish(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		r1, co, err := e.EnqueueRun(ctx, newRun("appserver", "manual"))
		if err != nil || co {
			t.Fatalf("enqueue: %v coalesced=%v", err, co)
		}
		r2, co, err := e.EnqueueRun(ctx, newRun("appserver", "schedule 0 4 * * 1"))
		if err != nil || !co || r2.ID != r1.ID {
			t.Fatalf("second trigger: run %d coalesced=%v err=%v; want run %d coalesced", r2.ID, co, err, r1.ID)
		}
		wantContains(t, r2.Trigger, "manual", "schedule 0 4 * * 1")

		got := must[*kiln.Run](t)(e.ClaimRun(ctx, "w1"))
		if got == nil || got.ID != r1.ID || got.Status != kiln.RunRunning || got.Stages[2].Gate != kiln.GateApproval {
			t.Fatalf("claim: %+v", got)
		}
		// A trigger while it runs queues a new run; it cannot start while
		// the image has a running run.
		r3, co, err := e.EnqueueRun(ctx, newRun("appserver", "base basic-linux-2 ready"))
		if err != nil || co || r3.ID == r1.ID {
			t.Fatalf("trigger while running: %v %v", err, co)
		}
		if r := must[*kiln.Run](t)(e.ClaimRun(ctx, "w2")); r != nil {
			t.Fatalf("claimed run %d of an image with a running run", r.ID)
		}
		st := got.Stages[0]
		st.Status, st.Detail = kiln.StagePassed, "built appserver-1"
		v := kiln.VersionRef{Image: "appserver", Number: 1}
		if err := e.UpdateStage(ctx, r1.ID, "w1", 0, st, &v); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.UpdateStage(ctx, r1.ID, "w2", 0, st, nil), kiln.ECONFLICT)
		if err := e.AppendRunLog(ctx, r1.ID, "build", "line 1\n"); err != nil {
			t.Fatal(err)
		}
		if err := e.FinishRun(ctx, r1.ID, "w1", kiln.RunSucceeded, ""); err != nil {
			t.Fatal(err)
		}
		done := must[*kiln.Run](t)(e.FindRun(ctx, r1.ID))
		if done.Status != kiln.RunSucceeded || done.Version == nil || *done.Version != v || done.Stages[0].Detail != "built appserver-1" {
			t.Fatalf("finished run: %+v", done)
		}
		logs := must[[]*kiln.RunLog](t)(e.RunLogs(ctx, r1.ID, 0, 0))
		if len(logs) != 1 || logs[0].Text != "line 1\n" {
			t.Fatalf("logs: %+v", logs)
		}
		if r := must[*kiln.Run](t)(e.ClaimRun(ctx, "w2")); r == nil || r.ID != r3.ID {
			t.Fatalf("after the first ended, want run %d claimed, got %+v", r3.ID, r)
		}
		list, total := mustRuns(t)(e.ListRuns(ctx, kiln.RunFilter{Image: "appserver"}))
		if total != 2 || list[0].ID != r3.ID {
			t.Fatalf("list: total %d first %d", total, list[0].ID)
		}
		for _, tc := range []struct {
			f         kiln.RunFilter
			ids       []int64
			wantTotal int
		}{
			{kiln.RunFilter{Image: "appserver", Limit: 1, Offset: 1}, []int64{r1.ID}, 2},
			{kiln.RunFilter{Image: "appserver", Offset: 1}, []int64{r1.ID}, 2},
			{kiln.RunFilter{Image: "appserver", Limit: 5, Offset: 9}, nil, 2},
		} {
			list, total := mustRuns(t)(e.ListRuns(ctx, tc.f))
			var ids []int64
			for _, r := range list {
				ids = append(ids, r.ID)
			}
			if total != tc.wantTotal || fmt.Sprint(ids) != fmt.Sprint(tc.ids) {
				t.Errorf("ListRuns(%+v) = %v, total %d; want %v, total %d", tc.f, ids, total, tc.ids, tc.wantTotal)
			}
		}
	})
}

func mustRuns(t testing.TB) func([]*kiln.Run, int, error) ([]*kiln.Run, int) {
	return func(rs []*kiln.Run, n int, err error) ([]*kiln.Run, int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return rs, n
	}
}

func TestRunAfterBaseRun(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		base := must3(t)(e.EnqueueRun(ctx, newRun("basic-linux", "manual")))
		nr := newRun("appserver", "manual")
		nr.After = base.ID
		app := must3(t)(e.EnqueueRun(ctx, nr))
		got := must[*kiln.Run](t)(e.ClaimRun(ctx, "w1"))
		if got == nil || got.ID != base.ID {
			t.Fatalf("want the base run first, got %+v", got)
		}
		if r := must[*kiln.Run](t)(e.ClaimRun(ctx, "w2")); r != nil {
			t.Fatalf("run %d started before the run it waits after ended", r.ID)
		}
		if err := e.FinishRun(ctx, base.ID, "w1", kiln.RunFailed, "build failed"); err != nil {
			t.Fatal(err)
		}
		if r := must[*kiln.Run](t)(e.ClaimRun(ctx, "w2")); r != nil {
			t.Fatalf("run %d started after its base run failed", r.ID)
		}
		a := must[*kiln.Run](t)(e.FindRun(ctx, app.ID))
		if a.Status != kiln.RunCancelled {
			t.Fatalf("dependent run is %s, want cancelled", a.Status)
		}
		wantContains(t, a.Reason, "basic-linux", "failed")
	})
}

func must3(t testing.TB) func(*kiln.Run, bool, error) *kiln.Run {
	return func(r *kiln.Run, _ bool, err error) *kiln.Run {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

func TestRunInterruptRetryApprove(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		r := must3(t)(e.EnqueueRun(ctx, newRun("appserver", "manual")))
		c := must[*kiln.Run](t)(e.ClaimRun(ctx, "host:4242"))
		c.Stages[0].Status = kiln.StagePassed
		c.Stages[1].Status = kiln.StageRunning
		for i := range 2 {
			if err := e.UpdateStage(ctx, r.ID, "host:4242", i, c.Stages[i], nil); err != nil {
				t.Fatal(err)
			}
		}
		// A live worker's run is left alone; the dead worker's is interrupted.
		if rs := must[[]*kiln.Run](t)(e.InterruptRuns(ctx, []string{"host:1"}, time.Time{}, "worker gone", false)); len(rs) != 0 {
			t.Fatalf("interrupted %d runs of a live worker", len(rs))
		}
		rs := must[[]*kiln.Run](t)(e.InterruptRuns(ctx, []string{"host:4242"}, time.Time{}, "kiln process 4242 ended during the run", false))
		if len(rs) != 1 || rs[0].Status != kiln.RunInterrupted || rs[0].Stages[1].Status != kiln.StageInterrupted {
			t.Fatalf("interrupt: %+v", rs)
		}
		wantCode(t, e.Heartbeat(ctx, r.ID, "host:4242"), kiln.ECONFLICT)
		got := must[*kiln.Run](t)(e.FindRun(ctx, r.ID))
		wantContains(t, got.Reason, "process 4242 ended")

		re := must[*kiln.Run](t)(e.RetryRun(ctx, r.ID, "retry by alice"))
		if re.Status != kiln.RunQueued || re.Stages[0].Status != kiln.StagePassed || re.Stages[1].Status != kiln.StagePending {
			t.Fatalf("retry kept the passed stage and reset the interrupted one? %+v", re.Stages)
		}
		_, err := e.RetryRun(ctx, r.ID, "")
		wantCode(t, err, kiln.ECONFLICT)

		// Stale heartbeats are interrupted too (a worker on another host).
		if c := must[*kiln.Run](t)(e.ClaimRun(ctx, "other:7")); c == nil {
			t.Fatal("nothing to claim after retry")
		}
		rs = must[[]*kiln.Run](t)(e.InterruptRuns(ctx, nil, e.clock.Now().Add(time.Hour), "no heartbeat", false))
		if len(rs) != 1 {
			t.Fatalf("stale run not interrupted: %+v", rs)
		}
		must[*kiln.Run](t)(e.RetryRun(ctx, r.ID, ""))
		c = must[*kiln.Run](t)(e.ClaimRun(ctx, "w"))
		c.Stages[1].Status, c.Stages[2].Status = kiln.StagePassed, kiln.StageWaiting
		for i := 1; i < 3; i++ {
			if err := e.UpdateStage(ctx, r.ID, "w", i, c.Stages[i], nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.FinishRun(ctx, r.ID, "w", kiln.RunWaiting, "prod waits for approval"); err != nil {
			t.Fatal(err)
		}
		_, err = e.ApproveStage(ctx, r.ID, "nope")
		wantCode(t, err, kiln.ENOTFOUND)
		ap := must[*kiln.Run](t)(e.ApproveStage(kiln.WithActor(ctx, "alice"), r.ID, "prod"))
		if ap.Status != kiln.RunQueued || ap.Stages[2].Status != kiln.StageApproved || ap.Stages[2].ApprovedBy != "alice" {
			t.Fatalf("approve: %+v", ap)
		}
	})
}

// TestRunClaimConcurrentWorkers has several handles (as several kiln serve
// processes) claim from one queue at once: every run is handed out once.
func TestRunClaimConcurrentWorkers(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const images = 24
		for i := range images {
			must3(t)(e.EnqueueRun(ctx, newRun(fmt.Sprintf("image-%d", i), "manual")))
		}
		var mu sync.Mutex
		claimed := map[int64]string{}
		var wg sync.WaitGroup
		for w := range 4 {
			db := e.reopen(t)
			wg.Add(1)
			go func() {
				defer wg.Done()
				name := fmt.Sprintf("worker-%d", w)
				for {
					r, err := db.ClaimRun(ctx, name)
					if err != nil {
						t.Error(err)
						return
					}
					if r == nil {
						return
					}
					mu.Lock()
					if prev, dup := claimed[r.ID]; dup {
						t.Errorf("run %d claimed by %s and %s", r.ID, prev, name)
					}
					claimed[r.ID] = name
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(claimed) != images {
			t.Fatalf("%d runs claimed, want %d", len(claimed), images)
		}
	})
}

// TestRunResume: a run interrupted because its worker died is queued
// again from its interrupted stage once, whichever of several workers asks
// first; a run a user stopped is not; a run interrupted again after the
// limit, or whose image has another queued run, stays interrupted and
// says why; a manual retry clears a pending resume.
func TestRunResume(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// interrupt claims a queued run of image for worker, passes its
		// build stage, starts its test stage and interrupts it.
		interrupt := func(image, worker string, resume bool) *kiln.Run {
			t.Helper()
			c := must[*kiln.Run](t)(e.ClaimRun(ctx, worker))
			if c == nil || c.Image != image {
				t.Fatalf("claim for %s: %+v", image, c)
			}
			for i, st := range []kiln.StageStatus{kiln.StagePassed, kiln.StageRunning} {
				if c.Stages[i].Status.Passed() {
					continue
				}
				c.Stages[i].Status = st
				must[any](t)(nil, e.UpdateStage(ctx, c.ID, worker, i, c.Stages[i], nil))
			}
			rs := must[[]*kiln.Run](t)(e.InterruptRuns(ctx, []string{worker}, time.Time{}, "worker died", resume))
			if len(rs) != 1 || rs[0].ResumePending != resume {
				t.Fatalf("interrupt %s: %+v", image, rs)
			}
			return rs[0]
		}
		r := must3(t)(e.EnqueueRun(ctx, newRun("appserver", "manual")))
		interrupt("appserver", "host:1", true)
		stopped := must3(t)(e.EnqueueRun(ctx, newRun("basic-linux", "manual")))
		interrupt("basic-linux", "host:2", false) // a user's Ctrl-C

		// Four workers ask at once: the run is resumed once.
		var mu sync.Mutex
		var resumed []*kiln.Run
		var wg sync.WaitGroup
		for w := range 4 {
			db := e.reopen(t)
			wg.Go(func() {
				rs, err := db.ResumeRuns(ctx, 2, fmt.Sprintf("resumed by worker w%d", w))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				resumed = append(resumed, rs...)
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(resumed) != 1 || resumed[0].ID != r.ID || resumed[0].Status != kiln.RunQueued || resumed[0].Resumes != 1 || resumed[0].ResumePending {
			t.Fatalf("resumed %+v; want run %d queued once", resumed, r.ID)
		}
		got := resumed[0]
		if got.Stages[0].Status != kiln.StagePassed || got.Stages[1].Status != kiln.StagePending || !strings.Contains(got.Trigger, "resumed by worker") {
			t.Fatalf("resumed run kept its passed stage and resets the interrupted one? %+v (trigger %q)", got.Stages, got.Trigger)
		}
		if s := must[*kiln.Run](t)(e.FindRun(ctx, stopped.ID)); s.Status != kiln.RunInterrupted || s.ResumePending {
			t.Fatalf("the run a user stopped: %s pending=%v", s.Status, s.ResumePending)
		}
		if rs := must[[]*kiln.Run](t)(e.ResumeRuns(ctx, 2, "again")); len(rs) != 0 {
			t.Fatalf("resumed again without a new interruption: %+v", rs)
		}
		entries := must[[]*kiln.AuditEntry](t)(e.ListAudit(ctx, kiln.AuditFilter{}))
		n := 0
		for _, a := range entries {
			if a.Action == "run.resume" && a.Target == fmt.Sprintf("run %d", r.ID) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%d run.resume entries, want 1", n)
		}

		// The second interruption is resumed too (limit 2); the third is not.
		interrupt("appserver", "host:3", true)
		if rs := must[[]*kiln.Run](t)(e.ResumeRuns(ctx, 2, "resumed")); len(rs) != 1 || rs[0].Status != kiln.RunQueued || rs[0].Resumes != 2 {
			t.Fatalf("second resume: %+v", rs)
		}
		interrupt("appserver", "host:4", true)
		rs := must[[]*kiln.Run](t)(e.ResumeRuns(ctx, 2, "resumed"))
		if len(rs) != 1 || rs[0].Status != kiln.RunInterrupted || rs[0].ResumePending || !strings.Contains(rs[0].Reason, "after 2 automatic resumes") ||
			!strings.Contains(rs[0].Reason, fmt.Sprintf("kiln run retry %d", r.ID)) {
			t.Fatalf("past the limit: %+v", rs)
		}
		// A manual retry queues it, and the count starts again.
		if re := must[*kiln.Run](t)(e.RetryRun(ctx, r.ID, "retried by alice")); re.Status != kiln.RunQueued || re.ResumePending || re.Resumes != 0 {
			t.Fatalf("retry: %+v", re)
		}

		// An interrupted run whose image has another queued run is not
		// resumed (the queued one builds the latest definition).
		interrupt("appserver", "host:5", true)
		q := must3(t)(e.EnqueueRun(ctx, newRun("appserver", "push")))
		rs = must[[]*kiln.Run](t)(e.ResumeRuns(ctx, 5, "resumed"))
		if len(rs) != 1 || rs[0].Status != kiln.RunInterrupted || !strings.Contains(rs[0].Reason, fmt.Sprintf("run %d of appserver is queued", q.ID)) {
			t.Fatalf("with a queued run: %+v", rs)
		}
		_, err := e.ResumeRuns(ctx, 0, "x")
		wantCode(t, err, kiln.EINVALID)
	})
}

func readyVersion(t *testing.T, e *env, image string) *kiln.Version {
	t.Helper()
	ctx := context.Background()
	v := mkVersion(t, e.DB, &kiln.NewVersion{Image: image})
	must[*kiln.Version](t)(e.SetStatus(ctx, v.Ref(), kiln.StatusTested, "tests passed"))
	return must[*kiln.Version](t)(e.MarkReady(ctx, v.Ref(), "pipeline: scan passed"))
}

func TestChannelPromoteRollback(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		mkImage(t, e.DB, "appserver")
		v1 := readyVersion(t, e, "appserver")
		v2 := readyVersion(t, e, "appserver")
		cand := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})

		_, err := e.Promote(ctx, cand.Ref(), "dev", "", "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "candidate", "ready")
		_, err = e.Promote(ctx, v1.Ref(), "staging", "dev", "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "has not been in dev")

		for _, env := range []struct{ to, prev string }{{"dev", ""}, {"staging", "dev"}} {
			for _, v := range []*kiln.Version{v1, v2} {
				if _, err := e.Promote(ctx, v.Ref(), env.to, env.prev, "rollout"); err != nil {
					t.Fatalf("promote %s to %s: %v", v.Name, env.to, err)
				}
			}
		}
		c := must[*kiln.Channel](t)(e.FindChannel(ctx, "appserver", "staging"))
		if c.Version.Number != 2 || c.UpdatedBy != "alice" {
			t.Fatalf("staging: %+v", c)
		}
		p := must[*kiln.Promotion](t)(e.Rollback(ctx, "appserver", "staging", "bad release", false))
		if p.Kind != kiln.PromotionRollback || p.Number != 1 || p.Previous != 2 {
			t.Fatalf("rollback: %+v", p)
		}
		_, err = e.Rollback(ctx, "appserver", "staging", "", false)
		wantCode(t, err, kiln.ECONFLICT)
		_, err = e.FindChannel(ctx, "appserver", "prod")
		wantCode(t, err, kiln.ENOTFOUND)
		ps := must[[]*kiln.Promotion](t)(e.Promotions(ctx, "appserver", "", 0))
		if len(ps) != 5 {
			t.Fatalf("%d promotions recorded, want 5", len(ps))
		}
		cs := must[[]*kiln.Channel](t)(e.Channels(ctx, ""))
		if len(cs) != 2 {
			t.Fatalf("channels: %+v", cs)
		}
	})
}

func TestWebhookDeliveryLog(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		w := &kiln.Webhook{URL: "http://127.0.0.1:9/hook", Secret: "0123456789abcdef0123", Events: []kiln.WebhookEvent{kiln.EventReady}}
		if err := e.AddWebhook(ctx, w); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.AddWebhook(ctx, &kiln.Webhook{URL: "ftp://x", Secret: "0123456789abcdef", Events: w.Events}), kiln.EINVALID)
		v := readyVersion(t, e, "appserver")
		if _, err := e.Promote(ctx, v.Ref(), "dev", "", ""); err != nil { // not subscribed: no delivery
			t.Fatal(err)
		}
		ds := must[[]*kiln.WebhookDelivery](t)(e.ClaimDeliveries(ctx, 10, time.Minute))
		if len(ds) != 1 || ds[0].Event != kiln.EventReady || ds[0].Secret != w.Secret {
			t.Fatalf("deliveries: %+v", ds)
		}
		wantContains(t, string(ds[0].Payload), `"name":"appserver-1"`)
		// Leased: a second sender gets nothing.
		if again := must[[]*kiln.WebhookDelivery](t)(e.reopen(t).ClaimDeliveries(ctx, 10, time.Minute)); len(again) != 0 {
			t.Fatalf("leased delivery handed out again")
		}
		if err := e.RecordAttempt(ctx, ds[0].ID, false, 500, "500 Internal Server Error", e.clock.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		ds = must[[]*kiln.WebhookDelivery](t)(e.ClaimDeliveries(ctx, 10, time.Minute))
		if len(ds) != 1 || ds[0].Attempts != 1 {
			t.Fatalf("retry: %+v", ds)
		}
		if err := e.RecordAttempt(ctx, ds[0].ID, true, 200, "", time.Time{}); err != nil {
			t.Fatal(err)
		}
		log := must[[]*kiln.WebhookDelivery](t)(e.Deliveries(ctx, 0, 0))
		if len(log) != 1 || log[0].Status != kiln.DeliveryDelivered || log[0].Attempts != 2 || log[0].DeliveredAt.IsZero() {
			t.Fatalf("log: %+v", log[0])
		}
	})
}

func TestClaimSchedule(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		hourly := func(t time.Time) time.Time { return t.Add(time.Hour) }
		never := func(time.Time) time.Time { return time.Time{} }
		if fire := must[bool](t)(e.ClaimSchedule(ctx, "/estate", "appserver", "@hourly", hourly)); fire {
			t.Fatal("a schedule fired the first time it was seen")
		}
		if fire := must[bool](t)(e.ClaimSchedule(ctx, "/estate", "appserver", "@hourly", never)); fire {
			t.Fatal("fired before due")
		}
		past := func(time.Time) time.Time { return time.Unix(1, 0) }
		if fire := must[bool](t)(e.ClaimSchedule(ctx, "/estate", "appserver", "@hourly", past)); !fire {
			t.Fatal("a due schedule did not fire")
		}
		if fire := must[bool](t)(e.reopen(t).ClaimSchedule(ctx, "/estate", "appserver", "@hourly", hourly)); fire {
			t.Fatal("a schedule fired twice")
		}
	})
}

// A rollback that would land on a revoked version is refused, naming the
// revocation (who, why, when) and the next version back that is not
// revoked; forced, it is done and audited; with nothing free of
// revocation behind it, the refusal says to promote one.
func TestChannelRollbackOntoRevoked(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		mkImage(t, e.DB, "appserver")
		var vs []*kiln.Version
		for range 4 {
			v := readyVersion(t, e, "appserver")
			vs = append(vs, v)
			if _, err := e.Promote(ctx, v.Ref(), "prod", "", "release"); err != nil {
				t.Fatal(err)
			}
		}
		// prod: 1 → 2 → 3 → 4. 3 and 2 revoked: rolling back from 4 lands on
		// 3; the next candidate back is 1.
		for _, n := range []int{3, 2} {
			if _, err := e.Revoke(kiln.WithActor(ctx, "bob"), vs[n-1].Ref(), "CVE-2026-1234"); err != nil {
				t.Fatal(err)
			}
		}
		_, err := e.Rollback(ctx, "appserver", "prod", "bad release", false)
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "from appserver-4 would land on appserver-3", "revoked (CVE-2026-1234, by bob at ",
			"next version back that is not revoked is appserver-1", "kiln promote appserver-1 --to prod", "--force")
		if c := must[*kiln.Channel](t)(e.FindChannel(ctx, "appserver", "prod")); c.Version.Number != 4 {
			t.Fatalf("a refused rollback moved prod: %+v", c)
		}
		p := must[*kiln.Promotion](t)(e.Rollback(ctx, "appserver", "prod", "knowingly", true))
		if p.Kind != kiln.PromotionRollback || p.Number != 3 || p.Previous != 4 {
			t.Fatalf("forced rollback: %+v", p)
		}
		var forced *kiln.AuditEntry
		for _, a := range must[[]*kiln.AuditEntry](t)(e.ListAudit(ctx, kiln.AuditFilter{})) {
			if a.Action == "channel.rollback.forced" {
				forced = a
			}
		}
		if forced == nil || forced.Actor != "alice" || forced.Target != "appserver/prod" || !strings.Contains(forced.Detail, "appserver-3, which is revoked (CVE-2026-1234, by bob") {
			t.Fatalf("forced rollback audit: %+v", forced)
		}
		// The channel on a revoked version resolves as always: the newest
		// version it held that is not revoked, naming the revoked one.
		if c := must[*kiln.Channel](t)(e.FindChannel(ctx, "appserver", "prod")); c.Revoked == nil || c.Revoked.Number != 3 || c.Version.Number != 4 {
			t.Fatalf("prod after the forced rollback: %+v", c)
		}
		// Back on 4, with 1 revoked too: nothing behind 3 is free.
		if _, err := e.Promote(ctx, vs[3].Ref(), "prod", "", "again"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Revoke(ctx, vs[0].Ref(), "old"); err != nil {
			t.Fatal(err)
		}
		_, err = e.Rollback(ctx, "appserver", "prod", "", false)
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "would land on appserver-3", "no earlier version in prod's history is free of revocation", "kiln promote appserver-N --to prod")
	})
}

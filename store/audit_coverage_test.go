package store

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// Every mutating method of the advisory, pipeline, channel, webhook,
// service and rollout stores appends exactly one audit entry (more only
// where one call makes several decisions) in its own transaction, with the
// actor of its context. Lease renewals, log chunks, delivery leases and
// front-end reports are the documented exceptions (docs/security.md).
func TestAuditCoverage(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithSource(kiln.WithActor(context.Background(), "token:ops"), "192.0.2.9")
		mkImage(t, e.DB, "appserver")
		v1 := readyVersion(t, e, "appserver")
		seq := func() int64 {
			es := must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), kiln.AuditFilter{Limit: 1}))
			if len(es) == 0 {
				return 0
			}
			return es[0].Seq
		}
		// expect runs one call and checks the entries it appended: their
		// actions in order, the last one's target and a part of its detail.
		expect := func(name string, call func() error, target, detail string, actions ...string) {
			t.Helper()
			before := seq()
			if err := call(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			es := must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), kiln.AuditFilter{}))
			var got []*kiln.AuditEntry
			for _, a := range es {
				if a.Seq > before {
					got = append(got, a)
				}
			}
			var acts []string
			for _, a := range got {
				acts = append(acts, a.Action)
			}
			if strings.Join(acts, " ") != strings.Join(actions, " ") {
				t.Fatalf("%s: audit actions %q, want %q", name, acts, actions)
			}
			last := got[len(got)-1]
			if last.Target != target || !strings.Contains(last.Detail, detail) || last.Actor != "token:ops" || last.Source != "192.0.2.9" || last.Result != kiln.AuditOK {
				t.Errorf("%s: entry %+v, want target %q, detail containing %q, actor token:ops from 192.0.2.9", name, last, target, detail)
			}
		}
		// A failed call leaves no entry.
		refused := func(name string, call func() error) {
			t.Helper()
			before := seq()
			if err := call(); err == nil {
				t.Fatalf("%s: no error", name)
			}
			if after := seq(); after != before {
				t.Errorf("%s failed but appended %d audit entries", name, after-before)
			}
		}

		// Advisories.
		adv := &kiln.Advisory{ID: "DSA-5678-1", Source: kiln.AdvisoryManual, Summary: "openssl", FixedIn: []kiln.VersionRef{v1.Ref()}}
		expect("PutAdvisories", func() error { _, err := e.PutAdvisories(ctx, []*kiln.Advisory{adv}); return err },
			"advisory DSA-5678-1", "1 new, 0 replaced", "advisory.put")
		adv2 := &kiln.Advisory{ID: "DSA-5679-1", Source: kiln.AdvisoryManual, FixedIn: []kiln.VersionRef{v1.Ref()}}
		expect("PutAdvisories again", func() error { _, err := e.PutAdvisories(ctx, []*kiln.Advisory{adv, adv2}); return err },
			"2 advisories (DSA-5678-1, DSA-5679-1)", "1 new, 0 replaced, 1 unchanged", "advisory.put")
		expect("DeleteAdvisory", func() error { return e.DeleteAdvisory(ctx, "DSA-5679-1") }, "advisory DSA-5679-1", "", "advisory.delete")
		refused("DeleteAdvisory unknown", func() error { return e.DeleteAdvisory(ctx, "DSA-5679-1") })

		// Runs: queue, claim, stages, finish, approve, retry, cancel.
		var run *kiln.Run
		expect("EnqueueRun", func() error {
			var err error
			run, _, err = e.EnqueueRun(ctx, newRun("appserver", "manual"))
			return err
		},
			"run 1", "manual", "run.queue")
		expect("ClaimRun", func() error { _, err := e.ClaimRun(ctx, "host:1"); return err }, "run 1", "worker host:1", "run.start")
		refused("ClaimRun with nothing queued is no change", func() error {
			r, err := e.ClaimRun(ctx, "host:1")
			if err == nil && r == nil {
				return errNoop
			}
			return err
		})
		st := run.Stages[0]
		st.Status, st.StartedAt = kiln.StagePassed, time.Now()
		expect("UpdateStage", func() error { return e.UpdateStage(ctx, run.ID, "host:1", 0, st, nil) }, "run 1", "stage build: passed", "run.stage")
		expect("UpdateStage progress", func() error {
			if err := e.UpdateStage(ctx, run.ID, "host:1", 0, st, nil); err != nil {
				return err
			}
			return e.AppendAudit(ctx, &kiln.AuditEntry{Action: "test.marker", Target: "run 1"})
		}, "run 1", "", "test.marker") // the same status again is progress, not an action
		gate := run.Stages[2]
		gate.Status = kiln.StageWaiting
		expect("UpdateStage waiting", func() error { return e.UpdateStage(ctx, run.ID, "host:1", 2, gate, nil) }, "run 1", "stage prod: waiting", "run.stage")
		expect("FinishRun waiting", func() error { return e.FinishRun(ctx, run.ID, "host:1", kiln.RunWaiting, "prod needs approval") },
			"run 1", "approval", "run.waiting")
		expect("ApproveStage", func() error { _, err := e.ApproveStage(ctx, run.ID, "prod"); return err }, "run 1", "prod", "run.approve")
		expect("CancelRun", func() error { _, err := e.CancelRun(ctx, run.ID, "not today"); return err }, "run 1", "not today", "run.cancel")
		refused("CancelRun twice", func() error { _, err := e.CancelRun(ctx, run.ID, "again"); return err })
		r2 := must3(t)(e.EnqueueRun(ctx, newRun("appserver", "manual")))
		must[*kiln.Run](t)(e.ClaimRun(ctx, "host:2"))
		must[any](t)(nil, e.FinishRun(ctx, r2.ID, "host:2", kiln.RunFailed, "tests failed"))
		expect("RetryRun", func() error { _, err := e.RetryRun(ctx, r2.ID, "flaky"); return err }, "run 2", "flaky", "run.retry")
		must[*kiln.Run](t)(e.ClaimRun(ctx, "host:3"))
		expect("InterruptRuns", func() error {
			_, err := e.InterruptRuns(ctx, []string{"host:3"}, time.Time{}, "worker died", true)
			return err
		},
			"run 2", "", "run.interrupted")
		expect("ResumeRuns", func() error { _, err := e.ResumeRuns(ctx, 1, "resumed by worker host:4"); return err },
			"run 2", "resumed by worker host:4", "run.resume")
		must[*kiln.Run](t)(e.ClaimRun(ctx, "host:4"))
		must[[]*kiln.Run](t)(e.InterruptRuns(ctx, []string{"host:4"}, time.Time{}, "worker died", true))
		expect("ResumeRuns at the limit", func() error { _, err := e.ResumeRuns(ctx, 1, "resumed by worker host:5"); return err },
			"run 2", "after 1 automatic resumes", "run.resume.refused")
		// Schedules: first seen, changed, fired.
		next := func(t time.Time) time.Time { return t.Add(-time.Hour) }
		expect("ClaimSchedule first", func() error { _, err := e.ClaimSchedule(ctx, "/estate", "appserver", "@daily", next); return err },
			"image appserver", "@daily", "schedule.record")
		expect("ClaimSchedule changed", func() error { _, err := e.ClaimSchedule(ctx, "/estate", "appserver", "@hourly", next); return err },
			"image appserver", "@daily → @hourly", "schedule.change")
		expect("ClaimSchedule fires", func() error {
			fired, err := e.ClaimSchedule(ctx, "/estate", "appserver", "@hourly", next)
			if err == nil && !fired {
				t.Error("schedule did not fire")
			}
			return err
		}, "image appserver", "@hourly", "schedule.fire")

		// Channels (promotion queues its webhooks in the same entry's transaction).
		expect("Promote", func() error { _, err := e.Promote(ctx, v1.Ref(), "dev", "", "first"); return err },
			"appserver/dev", "appserver-1", "channel.promote")
		v2 := readyVersion(t, e, "appserver")
		must[*kiln.Promotion](t)(e.Promote(ctx, v2.Ref(), "dev", "", ""))
		expect("Rollback", func() error { _, err := e.Rollback(ctx, "appserver", "dev", "bad", false); return err },
			"appserver/dev", "appserver-1", "channel.rollback")

		// Webhooks: add, event, attempts, delete.
		w := &kiln.Webhook{URL: "http://127.0.0.1:9/hook", Secret: "0123456789abcdef0123", Events: []kiln.WebhookEvent{kiln.EventReady}}
		expect("AddWebhook", func() error { return e.AddWebhook(ctx, w) }, "webhook 1", "127.0.0.1:9", "webhook.add")
		expect("EnqueueEvent", func() error { _, err := e.EnqueueEvent(ctx, kiln.EventReady, []byte(`{}`)); return err },
			"event ready", "1 deliveries", "webhook.event")
		ds := must[[]*kiln.WebhookDelivery](t)(e.ClaimDeliveries(ctx, 10, time.Minute))
		if len(ds) != 1 {
			t.Fatalf("deliveries due: %d", len(ds))
		}
		expect("RecordAttempt retry", func() error {
			return e.RecordAttempt(ctx, ds[0].ID, false, 502, "bad gateway", time.Now().Add(time.Minute))
		},
			"delivery "+strconv.FormatInt(ds[0].ID, 10), "retry at", "webhook.attempt")
		expect("RecordAttempt delivered", func() error { return e.RecordAttempt(ctx, ds[0].ID, true, 200, "", time.Time{}) },
			"delivery "+strconv.FormatInt(ds[0].ID, 10), "delivered (HTTP 200)", "webhook.attempt")
		refused("RecordAttempt after delivery", func() error { return e.RecordAttempt(ctx, ds[0].ID, true, 200, "", time.Time{}) })
		expect("DeleteWebhook", func() error { return e.DeleteWebhook(ctx, w.ID) }, "webhook 1", "", "webhook.delete")

		// Registered estates (the API starts runs only from these).
		expect("AddEstate", func() error { return e.AddEstate(ctx, &kiln.Estate{Name: "web", Dir: "/srv/estates/web"}) }, "estate web", "/srv/estates/web", "estate.add")
		refused("AddEstate again", func() error { return e.AddEstate(ctx, &kiln.Estate{Name: "web2", Dir: "/srv/estates/web"}) })
		refused("AddEstate relative", func() error { return e.AddEstate(ctx, &kiln.Estate{Name: "rel", Dir: "estates/web"}) })
		if es := must[[]*kiln.Estate](t)(e.ListEstates(ctx)); len(es) != 1 || es[0].CreatedBy != "token:ops" {
			t.Fatalf("estates: %+v", es)
		}
		expect("RemoveEstate", func() error { return e.RemoveEstate(ctx, "web") }, "estate web", "/srv/estates/web", "estate.remove")
		refused("RemoveEstate unknown", func() error { return e.RemoveEstate(ctx, "web") })

		// Services, members and rollouts.
		svc := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18081",
			Health: kiln.HealthCheck{Kind: kiln.HealthHTTP, Path: "/"}}
		expect("CreateService", func() error { return e.CreateService(ctx, svc) }, "service web", "1 replicas", "service.create")
		expect("SetServiceVersion", func() error { return e.SetServiceVersion(ctx, "web", v1.Ref()) }, "service web", "appserver-1", "service.version")
		refused("SetServiceVersion unknown", func() error { return e.SetServiceVersion(ctx, "nosuch", v1.Ref()) })
		held := &kiln.PendingRollout{To: v2.Ref(), Why: "refresh for DSA-5678-1", By: "autopilot", Since: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)}
		expect("SetServicePending", func() error { return e.SetServicePending(ctx, "web", held) }, "service web",
			"appserver-2 held back by the service's rollout policy (refresh for DSA-5678-1, by autopilot since 2026-12-07T12:00:00Z)", "service.pending")
		expect("SetServicePending clear", func() error { return e.SetServicePending(ctx, "web", nil) }, "service web", "none", "service.pending")
		refused("SetServicePending unknown", func() error { return e.SetServicePending(ctx, "nosuch", held) })
		m := &kiln.Member{Service: "web", InstanceID: "web-a", Version: v1.Ref(), State: kiln.MemberLaunching}
		expect("PutMember", func() error { return e.PutMember(ctx, m) }, "service web instance web-a", "launching", "service.member")
		m.State = kiln.MemberActive
		expect("PutMember active", func() error { return e.PutMember(ctx, m) }, "service web instance web-a", "launching → active", "service.member")
		ro := &kiln.Rollout{Service: "web", To: v2.Ref()}
		expect("CreateRollout", func() error { return e.CreateRollout(ctx, ro) }, "service web", "appserver-2", "rollout.start")
		ro.Batch = 1
		expect("UpdateRollout step", func() error { return e.UpdateRollout(ctx, ro) }, "service web", "batch 1", "rollout.step")
		ro.State, ro.Reason = kiln.RolloutSucceeded, "all healthy"
		expect("UpdateRollout done", func() error { return e.UpdateRollout(ctx, ro) }, "service web", "all healthy", "rollout."+string(kiln.RolloutSucceeded))
		expect("DeleteMember", func() error { return e.DeleteMember(ctx, "web", "web-a") }, "service web instance web-a", "was active", "service.member.remove")
		refused("DeleteMember unknown is no change", func() error {
			if err := e.DeleteMember(ctx, "web", "web-a"); err != nil {
				return err
			}
			return errNoop
		})
		expect("DeleteService", func() error { return e.DeleteService(ctx, "web") }, "service web", "", "service.delete")

		if c := must[*kiln.AuditCheck](t)(e.VerifyAudit(ctx)); len(c.Problems) != 0 {
			t.Fatalf("chain: %q", c.Problems)
		}
	})
}

// errNoop turns "nothing changed" into an error for refused().
var errNoop = kiln.Errorf(kiln.ECONFLICT, "no change")

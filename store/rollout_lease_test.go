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

// leaseEnv makes service web with rollout 1 running and returns it.
func leaseEnv(t *testing.T, e *env) *kiln.Rollout {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:alice")
	mkImage(t, e.DB, "appserver")
	v1 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
	if err := e.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18080"}); err != nil {
		t.Fatal(err)
	}
	r := &kiln.Rollout{Service: "web", To: v1.Ref()}
	if err := e.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	return r
}

// auditActions returns the actions of the audit entries after seq.
func auditActions(t *testing.T, e *env, after int64) []string {
	t.Helper()
	var out []string
	for _, a := range must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), kiln.AuditFilter{})) {
		if a.Seq > after {
			out = append(out, a.Action)
		}
	}
	return out
}

func auditHead(t *testing.T, e *env) int64 {
	t.Helper()
	es := must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), kiln.AuditFilter{Limit: 1}))
	if len(es) == 0 {
		return 0
	}
	return es[0].Seq
}

// A lease is held by one owner at a time: the holder acquires again and
// renews, another owner is refused (told who holds it and until when)
// until the lease ends or is released; a takeover ends the old holder's
// renewals. Only changes of holder are audited.
func TestRolloutLease(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:alice")
		r := leaseEnv(t, e)
		const a, b = "kiln serve, pid 1234 on host alpha, run aaaaaa", "kiln rollout, pid 99 on host alpha, run bbbbbb"
		ttl := 30 * time.Second

		head := auditHead(t, e)
		if err := e.AcquireRollout(ctx, r.ID, a, ttl); err != nil {
			t.Fatalf("first acquire: %v", err)
		}
		if err := e.AcquireRollout(ctx, r.ID, a, ttl); err != nil {
			t.Fatalf("the holder acquiring again: %v", err)
		}
		if err := e.RenewRollout(ctx, r.ID, a, ttl); err != nil {
			t.Fatalf("renew: %v", err)
		}
		if got := auditActions(t, e, head); strings.Join(got, " ") != "rollout.lease" {
			t.Errorf("audit after acquire, acquire again, renew: %q; want one rollout.lease", got)
		}

		msg := wantCode(t, e.AcquireRollout(ctx, r.ID, b, ttl), kiln.ECONFLICT)
		wantContains(t, msg, fmt.Sprintf("rollout %d of web is being run by %s", r.ID, a), "lease until", "UTC", "stop that process")
		wantCode(t, e.RenewRollout(ctx, r.ID, b, ttl), kiln.ECONFLICT)
		// Releasing what one does not hold changes nothing.
		if err := e.ReleaseRollout(ctx, r.ID, b); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.AcquireRollout(ctx, r.ID, b, ttl), kiln.ECONFLICT)

		// The holder stops renewing (it died): after the lease ends, b
		// takes over, and a's next renewal says so.
		e.clock.advance(ttl)
		head = auditHead(t, e)
		if err := e.AcquireRollout(ctx, r.ID, b, ttl); err != nil {
			t.Fatalf("acquire after the lease ended: %v", err)
		}
		es := must[[]*kiln.AuditEntry](t)(e.ListAudit(ctx, kiln.AuditFilter{Limit: 1}))
		if es[0].Seq != head+1 || es[0].Action != "rollout.lease" || es[0].Target != "service web" {
			t.Fatalf("takeover audit entry: %+v", es[0])
		}
		wantContains(t, es[0].Detail, "run by "+b, "taken over from "+a)
		msg = wantCode(t, e.RenewRollout(ctx, r.ID, a, ttl), kiln.ECONFLICT)
		wantContains(t, msg, "taken over by "+b)
		wantCode(t, e.AcquireRollout(ctx, r.ID, a, ttl), kiln.ECONFLICT)

		// Released: another owner may take it at once; renewals and
		// releases are not audited.
		head = auditHead(t, e)
		if err := e.RenewRollout(ctx, r.ID, b, ttl); err != nil {
			t.Fatal(err)
		}
		if err := e.ReleaseRollout(ctx, r.ID, b); err != nil {
			t.Fatal(err)
		}
		if got := auditActions(t, e, head); len(got) != 0 {
			t.Errorf("renew and release appended audit entries %q", got)
		}
		wantContains(t, wantCode(t, e.RenewRollout(ctx, r.ID, b, ttl), kiln.ECONFLICT), "released")
		if err := e.AcquireRollout(ctx, r.ID, a, ttl); err != nil {
			t.Fatalf("acquire after release: %v", err)
		}

		// An ended rollout cannot be leased; an unknown one is not found.
		r.State, r.Reason = kiln.RolloutSucceeded, "done"
		if err := e.UpdateRollout(ctx, r); err != nil {
			t.Fatal(err)
		}
		wantContains(t, wantCode(t, e.RenewRollout(ctx, r.ID, a, ttl), kiln.ECONFLICT), "has ended (succeeded)")
		wantContains(t, wantCode(t, e.AcquireRollout(ctx, r.ID, b, ttl), kiln.ECONFLICT), "has ended (succeeded)")
		wantCode(t, e.AcquireRollout(ctx, 999, a, ttl), kiln.ENOTFOUND)
		wantCode(t, e.AcquireRollout(ctx, r.ID, "", ttl), kiln.EINVALID)
		wantCode(t, e.AcquireRollout(ctx, r.ID, a, 0), kiln.EINVALID)
	})
}

// Several processes (each its own handle on the database) acquiring one
// rollout at once: exactly one holds it, the others are refused naming it.
func TestRolloutLeaseConcurrentAcquire(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		r := leaseEnv(t, e)
		const n = 8
		dbs := make([]*DB, n)
		for i := range dbs {
			dbs[i] = e.reopen(t)
		}
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = dbs[i].AcquireRollout(context.Background(), r.ID, fmt.Sprintf("process %d", i), time.Minute)
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("processes %d and %d both hold rollout %d", winner, i, r.ID)
			case err == nil:
				winner = i
			case kiln.ErrorCode(err) != kiln.ECONFLICT:
				t.Fatalf("process %d: %v; want ECONFLICT", i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("nobody holds the rollout: %v", errs)
		}
		for i, err := range errs {
			if i != winner {
				wantContains(t, kiln.ErrorMessage(err), fmt.Sprintf("being run by process %d", winner))
			}
		}
	})
}

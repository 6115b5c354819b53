package rollout

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// interruptedRollout records a rollout of web to version 1 left by a
// process that died while launching an instance, and returns it.
func interruptedRollout(t *testing.T, env *hostEnv) *kiln.Rollout {
	t.Helper()
	ctx := opCtx()
	to := kiln.VersionRef{Image: "appserver", Number: 1}
	r := &kiln.Rollout{Service: "web", To: to}
	if err := env.db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := env.db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: "web-appserver-1-cccccc", Version: to, State: kiln.MemberLaunching, Rollout: r.ID}); err != nil {
		t.Fatal(err)
	}
	return r
}

// processEngine is the engine of one kiln process, named owner.
func (env *hostEnv) processEngine(owner string) *Engine {
	return &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Launcher: env.launcher(), Owner: owner}
}

// resumeAsync resumes web with e in a goroutine; stop cancels it and
// returns what Resume returned.
func resumeAsync(e *Engine) (stop func() error, done <-chan error) {
	ctx, cancel := context.WithCancel(opCtx())
	ch := make(chan error, 1)
	go func() {
		_, err := e.Resume(ctx, "web")
		ch <- err
	}()
	return func() error { cancel(); return <-ch }, ch
}

func waitErr(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		t.Fatalf("%s did not return within a minute", what)
		return nil
	}
}

// Two processes resuming one interrupted rollout: the second is refused,
// told which process runs it, and destroys nothing of what the first is
// launching; a server's resume is refused the same way. Once the first
// stopped (and released the lease), the second resumes it at once.
func TestResumeRefusedWhileAnotherProcessRunsIt(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	r := interruptedRollout(t, env)
	a, b := env.processEngine("process A"), env.processEngine("process B")

	stopA, _ := resumeAsync(a)
	launching := <-env.plat.launching // A recovered (destroyed the cut-short launch) and launches
	destroyed := env.plat.destroyedIDs()
	if len(destroyed) != 1 || destroyed[0] != "web-appserver-1-cccccc" {
		t.Fatalf("A's recovery destroyed %v; want the cut-short launch", destroyed)
	}

	_, err := b.Resume(ctx, "web")
	want(t, "B's resume while A runs it", err, kiln.ECONFLICT, fmt.Sprintf("rollout %d of web is being run by process A", r.ID), "lease until", "stop that process")
	h, _ := env.serve(t)
	_, err = h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", Resume: true})
	want(t, "a server's resume while A runs it", err, kiln.ECONFLICT, "being run by process A")
	if got := env.plat.destroyedIDs(); len(got) != 1 {
		t.Fatalf("the refused resumes destroyed %v", got[1:])
	}
	ms, err := env.db.ListMembers(ctx, "web")
	if err != nil || len(ms) != 1 || ms[0].InstanceID != launching || ms[0].State != kiln.MemberLaunching {
		t.Fatalf("members after the refused resumes: %+v %v; want A's %s launching", ms, err, launching)
	}

	if err := stopA(); kiln.ErrorCode(err) == kiln.ECONFLICT {
		t.Fatalf("A interrupted: %v", err)
	}
	stopB, _ := resumeAsync(b)
	<-env.plat.launching
	if err := stopB(); kiln.ErrorCode(err) == kiln.ECONFLICT {
		t.Fatalf("B's resume after A stopped: %v", err)
	}
	if got, err := env.db.FindRollout(ctx, r.ID); err != nil || got.State != kiln.RolloutRunning {
		t.Fatalf("rollout after both stopped: %+v %v; want it still running, to be resumed", got, err)
	}
}

// A process whose lease was taken over (it ran out while the process
// could not renew it) stops the rollout at its next step and records
// nothing more: no rollback, no failure.
func TestLostLeaseStopsRollout(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	r := interruptedRollout(t, env)
	a := env.processEngine("process A")
	a.LeaseTime = 600 * time.Millisecond
	_, done := resumeAsync(a)
	<-env.plat.launching

	// As if A's lease had run out and process B had taken the rollout.
	if err := env.db.ReleaseRollout(ctx, r.ID, "process A"); err != nil {
		t.Fatal(err)
	}
	if err := env.db.AcquireRollout(ctx, r.ID, "process B", time.Minute); err != nil {
		t.Fatal(err)
	}
	err := waitErr(t, "A after losing its lease", done)
	want(t, "A after losing its lease", err, kiln.ECONFLICT, fmt.Sprintf("rollout %d of web stopped here", r.ID), "taken over by process B")
	got, err := env.db.FindRollout(ctx, r.ID)
	if err != nil || got.State != kiln.RolloutRunning || got.Batch != 0 || got.Reason != "" {
		t.Fatalf("rollout after A lost it: %+v %v; want it running as B found it", got, err)
	}
	// B still holds it: A released nothing of it.
	want(t, "A acquiring again", env.db.AcquireRollout(ctx, r.ID, "process A", time.Minute), kiln.ECONFLICT, "being run by process B")
}

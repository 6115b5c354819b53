package rollout

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
)

// A failed rollout whose From version was revoked meanwhile is not rolled
// back onto it: the refusal names the revocation (who, why, when) and the
// next ready version back that is not revoked; with none, it says so; a
// From that is not revoked is rolled back onto as always.
func TestNoRollbackOntoRevoked(t *testing.T) {
	env := newHostEnv(t) // appserver-1, ready; service web
	ctx := opCtx()
	v2, v3, v4 := env.addVersion(t), env.addVersion(t), env.addVersion(t)
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db}
	svc, err := env.db.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	r := &kiln.Rollout{Service: "web", From: v3, To: v4}
	if got, err := e.revokedRollback(ctx, svc, r); err != nil || got != "" {
		t.Fatalf("From not revoked: %q, %v; want a rollback", got, err)
	}
	if _, err := env.db.Revoke(kiln.WithActor(ctx, "token:ops"), v3, "CVE-2026-1234"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.db.Revoke(ctx, v2, "bad build"); err != nil {
		t.Fatal(err)
	}
	got, err := e.revokedRollback(ctx, svc, r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"not rolled back onto appserver-3", "revoked (CVE-2026-1234, by token:ops at ", "instances already on appserver-4 are kept",
		"next ready version back that is not revoked is appserver-1", "kiln rollout web --to appserver-1"} {
		if !strings.Contains(got, want) {
			t.Errorf("refusal %q lacks %q", got, want)
		}
	}
	if _, err := env.db.Revoke(ctx, kiln.VersionRef{Image: "appserver", Number: 1}, "old"); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.revokedRollback(ctx, svc, r); !strings.Contains(got, "no earlier ready version of appserver is free of revocation") {
		t.Errorf("with nothing to go back to: %q", got)
	}
	if got, _ := e.revokedRollback(ctx, svc, &kiln.Rollout{Service: "web", To: v4}); got != "" {
		t.Errorf("a first rollout (nothing to roll back to) is not refused: %q", got)
	}
}

// Rolling a service back to an older version that is revoked is refused
// before anything is recorded, naming the revocation and the next ready
// version back that is not revoked.
func TestRollbackRolloutToRevokedRefused(t *testing.T) {
	env := newHostEnv(t) // appserver-1, ready; service web
	ctx := opCtx()
	v2, v3 := env.addVersion(t), env.addVersion(t)
	if err := env.db.SetServiceVersion(ctx, "web", v3); err != nil {
		t.Fatal(err)
	}
	if _, err := env.db.Revoke(kiln.WithActor(ctx, "token:ops"), v2, "CVE-2026-1234"); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db}
	_, err := e.Begin(ctx, "web", v2, Options{})
	for _, want := range []string{"rolling web back from appserver-3 to appserver-2 would land on a revoked version", "revoked (CVE-2026-1234, by token:ops at ",
		"next ready version back that is not revoked is appserver-1", "kiln rollout web --to appserver-1", "--force"} {
		if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(kiln.ErrorMessage(err), want) {
			t.Errorf("Begin to a revoked older version = %v; want a conflict saying %q", err, want)
		}
	}
	if rs, err := env.db.ListRollouts(ctx, "web", 0); err != nil || len(rs) != 0 {
		t.Errorf("a refused rollout was recorded: %+v, %v", rs, err)
	}
}

// failingPlatform is the listening in-memory platform whose launches of
// one version fail from the failFrom-th on; before failing, onFail runs
// (a test revokes a version there, as an operator would while the
// rollout runs).
type failingPlatform struct {
	*listenPlatform
	mu       sync.Mutex
	version  int
	failFrom int
	onFail   func()
	launched map[int]int // launches per version number
}

func (p *failingPlatform) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	p.mu.Lock()
	p.launched[spec.Version.Number]++
	fail := spec.Version.Number == p.version && p.failFrom > 0 && p.launched[spec.Version.Number] >= p.failFrom
	hook := p.onFail
	p.mu.Unlock()
	if fail {
		if hook != nil {
			hook()
		}
		return nil, errors.New("the test platform fails this launch")
	}
	return p.listenPlatform.Launch(ctx, spec)
}

// The engine itself, on the in-memory platform: a rollout from
// appserver-3 to appserver-4 whose second batch fails is rolled back onto
// appserver-3; when appserver-3 is revoked while the rollout runs (just
// before the failing launch), the failed rollout is not rolled back onto
// it: it ends failed where it stands (the instance already on appserver-4
// kept, appserver-3 never launched again), the stored rollout and the
// error name the revocation and the rollout to run instead, and the
// service still records appserver-3.
func TestFailedRolloutKeepsOffRevokedFrom(t *testing.T) {
	env := newHostEnv(t) // appserver-1, ready
	ctx := opCtx()
	v2, v3, v4 := env.addVersion(t), env.addVersion(t), env.addVersion(t)
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "rev", Image: "appserver", Environment: "prod", Replicas: 2, MaxSurge: 1,
		Listen: "127.0.0.1:8", Health: kiln.HealthCheck{Kind: kiln.HealthTCP}}); err != nil {
		t.Fatal(err)
	}
	frontEndStandIn(t, env, "rev")
	lp := &listenPlatform{Platform: memory.New()}
	t.Cleanup(lp.close)
	plat := &failingPlatform{listenPlatform: lp, version: v4.Number, launched: map[int]int{}}
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Progress: testWriter{t},
		Launcher:      &launch.Launcher{Registry: env.db, Platform: plat, Inventory: env.db, Key: env.key},
		HealthTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second}
	members := func() map[int]int {
		t.Helper()
		ms, err := env.db.ListMembers(ctx, "rev")
		if err != nil {
			t.Fatal(err)
		}
		on := map[int]int{}
		for _, m := range ms {
			if m.State == kiln.MemberActive {
				on[m.Version.Number]++
			}
		}
		return on
	}
	if r, err := e.Start(ctx, "rev", v3, Options{}); err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("rollout to %s: %+v %v", v3, r, err)
	}

	// Not revoked: the failed rollout is rolled back onto appserver-3.
	plat.mu.Lock()
	plat.failFrom = plat.launched[v4.Number] + 2 // the second batch
	plat.mu.Unlock()
	r, err := e.Start(ctx, "rev", v4, Options{})
	if err != nil || r.State != kiln.RolloutRolledBack {
		t.Fatalf("failed rollout, appserver-3 not revoked: %+v %v; want rolled back", r, err)
	}
	if on := members(); on[3] != 2 || len(on) != 1 {
		t.Fatalf("after the rollback: active members per version %v; want 2 on appserver-3", on)
	}

	// Revoked while the rollout runs: failed where it stands.
	plat.mu.Lock()
	plat.failFrom = plat.launched[v4.Number] + 2
	launchedV3 := plat.launched[v3.Number]
	plat.onFail = func() {
		if _, err := env.db.Revoke(kiln.WithActor(ctx, "token:ops"), v3, "CVE-2026-1234"); err != nil {
			t.Error(err)
		}
	}
	plat.mu.Unlock()
	r, err = e.Start(ctx, "rev", v4, Options{})
	if r == nil || r.State != kiln.RolloutFailed {
		t.Fatalf("failed rollout, appserver-3 revoked meanwhile: %+v %v; want failed, not rolled back", r, err)
	}
	for _, want := range []string{"not rolled back onto appserver-3", "revoked (CVE-2026-1234, by token:ops at ",
		"instances already on appserver-4 are kept", "kiln rollout rev --to " + v2.String()} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason %q lacks %q", r.Reason, want)
		}
	}
	want(t, "the failed rollout's error", err, kiln.ECONFLICT, "failed and was not rolled back", "not rolled back onto appserver-3")
	rs, lerr := env.db.ListRollouts(ctx, "rev", 1)
	if lerr != nil || len(rs) != 1 || rs[0].ID != r.ID || rs[0].State != kiln.RolloutFailed || rs[0].Reason != r.Reason {
		t.Errorf("stored rollout %+v %v; want rollout %d failed with its reason", rs, lerr, r.ID)
	}
	if on := members(); on[3] != 1 || on[4] != 1 || len(on) != 2 {
		t.Errorf("active members per version %v; want the appserver-4 one kept and one appserver-3 left", on)
	}
	plat.mu.Lock()
	if plat.launched[v3.Number] != launchedV3 {
		t.Errorf("appserver-3 launched %d more times after its revocation", plat.launched[v3.Number]-launchedV3)
	}
	plat.mu.Unlock()
	if svc, ferr := env.db.FindService(ctx, "rev"); ferr != nil || svc.Version != v3 {
		t.Errorf("service version %v (%v); want appserver-3 still recorded", svc, ferr)
	}
}

package rollout

import (
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
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

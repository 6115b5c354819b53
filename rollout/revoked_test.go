package rollout

import (
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/launch"
)

// A rollout to a version revoked through its base is refused before
// anything is recorded, and the refusal names the revoked ancestor and
// its reason.
func TestRolloutRefusesRevokedTarget(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	if err := env.db.CreateImage(ctx, &kiln.Image{Name: "basic-linux"}); err != nil {
		t.Fatal(err)
	}
	ready := func(nv *kiln.NewVersion) kiln.VersionRef {
		t.Helper()
		v, err := env.db.CreateVersion(ctx, nv)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := env.db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
				t.Fatal(err)
			}
		}
		return v.Ref()
	}
	base := ready(&kiln.NewVersion{Image: "basic-linux"})
	app := ready(&kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Base: &base,
		Artifact: &kiln.Artifact{Ref: "local:y", Digest: "sha256:" + strings.Repeat("b", 64)}}})
	if _, err := env.db.Revoke(ctx, base, "CVE-2026-4 in glibc"); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db,
		Launcher: &launch.Launcher{Registry: env.db, Platform: env.plat, Inventory: env.db, Key: env.key}}
	_, err := e.Begin(ctx, "web", app, Options{})
	if kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Fatalf("rollout of %s revoked through %s: %v; want ECONFLICT", app, base, err)
	}
	for _, w := range []string{app.String(), "revoked through its ancestor " + base.String(), "CVE-2026-4 in glibc", "restore " + base.String()} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
	if rs, err := env.db.ListRollouts(ctx, "web", 10); err != nil || len(rs) != 0 {
		t.Errorf("rollouts recorded after the refusal: %v %v", rs, err)
	}
}

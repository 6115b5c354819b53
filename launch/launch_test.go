package launch_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/store"
)

// fakePlatform boots nothing: it records what it was asked to launch and
// destroy, and fails launches with launchErr.
type fakePlatform struct {
	mu        sync.Mutex
	launched  []kiln.LaunchSpec
	destroyed []string
	launchErr error
}

var _ kiln.Platform = (*fakePlatform)(nil)

func (p *fakePlatform) Name() string { return "fake" }

func (p *fakePlatform) Launch(_ context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.launched = append(p.launched, spec)
	if p.launchErr != nil {
		return nil, p.launchErr
	}
	res := &kiln.LaunchResult{State: kiln.InstanceRunning}
	for _, f := range spec.Ports {
		res.Ports = append(res.Ports, kiln.PortForward{Host: strings.Replace(f.Host, ":0", ":4242", 1), Guest: f.Guest})
	}
	return res, nil
}

func (p *fakePlatform) Exec(context.Context, string, []string, kiln.ExecIO) (int, error) {
	return 0, nil
}
func (p *fakePlatform) State(context.Context, string) (kiln.InstanceState, error) {
	return kiln.InstanceRunning, nil
}
func (p *fakePlatform) Stop(context.Context, string) error { return nil }
func (p *fakePlatform) Destroy(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.destroyed = append(p.destroyed, id)
	return nil
}

// failingInventory refuses to record instances.
type failingInventory struct{ kiln.Inventory }

func (failingInventory) CreateInstance(context.Context, *kiln.Instance) error {
	return errors.New("database is locked")
}

type env struct {
	dir  string
	db   *store.DB
	plat *fakePlatform
	l    *launch.Launcher
	art  kiln.Artifact
}

var web1 = kiln.VersionRef{Image: "web", Number: 1}

// newEnv records web-1 (signed, ready) in a fresh SQLite registry, and a
// launcher that verifies with the registry's key.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := testenv.Sign(t, db)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	art := kiln.Artifact{Ref: "local:web", Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Artifact: &art, BuiltBy: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := db.SetStatus(ctx, v.Ref(), st, "test"); err != nil {
			t.Fatal(err)
		}
	}
	plat := &fakePlatform{}
	return &env{dir: dir, db: db, plat: plat, art: art,
		l: &launch.Launcher{Registry: db, Platform: plat, Inventory: db, Key: key}}
}

func TestLaunchRecordsInstance(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	res, err := e.l.Launch(ctx, launch.Request{Version: web1, ID: "web-1-a", Environment: "prod", Labels: map[string]string{"kiln.service": "web"},
		Ports: []kiln.PortForward{{Host: "127.0.0.1:0", Guest: 80}}, Timeout: time.Second, Gate: launch.Usable})
	if err != nil {
		t.Fatal(err)
	}
	if len(e.plat.launched) != 1 || !reflect.DeepEqual(e.plat.launched[0].Artifact, e.art) || e.plat.launched[0].Name != "web-1-a" || e.plat.launched[0].Timeout != time.Second {
		t.Fatalf("launched %+v", e.plat.launched)
	}
	inst, err := e.db.FindInstance(ctx, "web-1-a")
	if err != nil {
		t.Fatal(err)
	}
	if inst.Address != "127.0.0.1:4242" || inst.Environment != "prod" || inst.Platform != "fake" || inst.Labels["kiln.service"] != "web" || inst.Version != web1 {
		t.Errorf("recorded %+v", inst)
	}
	if res.Instance.Address != inst.Address || res.Version.Ref() != web1 {
		t.Errorf("result %+v", res)
	}
	if err := e.l.Destroy(ctx, "web-1-a", "test over"); err != nil {
		t.Fatal(err)
	}
	if inst, _ := e.db.FindInstance(ctx, "web-1-a"); inst.State != kiln.InstanceDestroyed {
		t.Errorf("after Destroy: %s", inst.State)
	}
}

// A version whose recorded artifact was swapped (the registry names
// another artifact than its signature does), one without signed
// provenance, and any version when the launcher has no key are refused
// before the platform is asked.
func TestLaunchRefusesUnverified(t *testing.T) {
	ctx := context.Background()
	t.Run("tampered artifact", func(t *testing.T) {
		e := newEnv(t)
		testenv.SwapArtifact(t, e.dir, e.art.Digest, "sha256:"+strings.Repeat("cd", 32))
		_, err := e.l.Launch(ctx, launch.Request{Version: web1, ID: "x"})
		if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "refusing to launch") {
			t.Fatalf("launch of a swapped artifact: %v", err)
		}
		if len(e.plat.launched) != 0 {
			t.Fatalf("the platform launched %+v", e.plat.launched)
		}
	})
	t.Run("no signed provenance", func(t *testing.T) {
		e := newEnv(t)
		e.db.SealVersionsWith(nil)
		v, err := e.db.CreateVersion(kiln.WithActor(ctx, "local:test"), &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Artifact: &e.art}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.l.Launch(ctx, launch.Request{Version: v.Ref(), ID: "x"})
		if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "has no signed provenance") {
			t.Fatalf("launch of an unsigned version: %v", err)
		}
		if len(e.plat.launched) != 0 {
			t.Fatalf("the platform launched %+v", e.plat.launched)
		}
	})
	t.Run("no key", func(t *testing.T) {
		e := newEnv(t)
		e.l.Key = nil
		if _, err := e.l.Launch(ctx, launch.Request{Version: web1, ID: "x"}); kiln.ErrorCode(err) != kiln.EUNAVAILABLE || len(e.plat.launched) != 0 {
			t.Fatalf("launch without a key: %v, launched %+v", err, e.plat.launched)
		}
	})
}

func TestLaunchGates(t *testing.T) {
	e := newEnv(t)
	ctx := kiln.WithActor(context.Background(), "local:test")
	cases := []struct {
		name     string
		gate     launch.Gate
		code     string
		contains string
	}{
		{"usable ready", launch.Usable, "", ""},
		{"rollout ready", launch.Ready(false), "", ""},
		{"test stage ready", launch.Candidate(false), kiln.ECONFLICT, "the test stage takes candidates only"},
		{"retest ready", launch.Candidate(true), "", ""},
	}
	for _, c := range cases {
		_, err := e.l.Check(ctx, web1, c.gate)
		if kiln.ErrorCode(err) != c.code || (c.contains != "" && !strings.Contains(err.Error(), c.contains)) {
			t.Errorf("%s: %v; want code %q saying %q", c.name, err, c.code, c.contains)
		}
	}
	if _, err := e.db.SetStatus(ctx, web1, kiln.StatusRevoked, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.l.Check(ctx, web1, launch.Usable); kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "web-1 is revoked (test, by local:test") {
		t.Errorf("usable revoked: %v", err)
	}
	if _, err := e.l.Check(ctx, web1, launch.Ready(true)); kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "only ready versions are rolled out") {
		t.Errorf("rollout of revoked: %v", err)
	}
}

// A launch the platform failed, and one that could not be recorded, leave
// no instance behind.
func TestLaunchUndoesFailures(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.plat.launchErr = kiln.Errorf(kiln.EUNAVAILABLE, "boot timed out")
	_, err := e.l.Launch(ctx, launch.Request{Version: web1, ID: "a"})
	var boot *launch.BootError
	if !errors.As(err, &boot) || kiln.ErrorMessage(err) != "boot timed out" {
		t.Fatalf("failed boot: %v", err)
	}
	e.plat.launchErr = nil
	e.l.Inventory = failingInventory{e.db}
	_, err = e.l.Launch(ctx, launch.Request{Version: web1, ID: "b"})
	if err == nil || errors.As(err, &boot) || !strings.Contains(err.Error(), "instance b was launched but could not be recorded, so it was destroyed again") {
		t.Fatalf("unrecorded launch: %v", err)
	}
	if strings.Join(e.plat.destroyed, " ") != "a b" {
		t.Fatalf("destroyed %v; want a b", e.plat.destroyed)
	}
}

// A revoked version is refused with the revocation's reason unless the
// request forces it; a forced launch is audited. An external artifact
// (a Packer import) is refused whatever the request says.
func TestLaunchRevokedAndExternal(t *testing.T) {
	e := newEnv(t)
	e.l.Audit = e.db
	ctx := kiln.WithActor(context.Background(), "local:test")
	if _, err := e.db.Revoke(ctx, web1, "CVE-2026-1"); err != nil {
		t.Fatal(err)
	}
	_, err := e.l.Launch(ctx, launch.Request{Version: web1, ID: "a", Gate: launch.Usable})
	if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "web-1 is revoked (CVE-2026-1") || len(e.plat.launched) != 0 {
		t.Fatalf("launch of a revoked version: %v, launched %+v", err, e.plat.launched)
	}
	if _, err := e.l.Launch(ctx, launch.Request{Version: web1, ID: "b", Gate: launch.Usable, Force: true}); err != nil {
		t.Fatalf("forced launch: %v", err)
	}
	if len(e.plat.launched) != 1 {
		t.Fatalf("launched %+v", e.plat.launched)
	}
	entries, err := e.db.ListAudit(ctx, kiln.AuditFilter{Target: "web-1"})
	if err != nil {
		t.Fatal(err)
	}
	var forced *kiln.AuditEntry
	for _, a := range entries {
		if a.Action == "instance.launch.forced" {
			forced = a
		}
	}
	if forced == nil || forced.Actor != "local:test" || !strings.Contains(forced.Detail, "instance b") || !strings.Contains(forced.Detail, "CVE-2026-1") {
		t.Fatalf("no audit entry for the forced launch: %+v", entries)
	}

	ext := kiln.Artifact{Ref: "us-east-1:ami-0abc"}
	v, err := e.db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Method: kiln.MethodExternal, Artifact: &ext, BuiltBy: "packer"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.l.Launch(ctx, launch.Request{Version: v.Ref(), ID: "c", Force: true})
	if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "kiln cannot launch an external artifact") || !strings.Contains(err.Error(), "ami-0abc") {
		t.Fatalf("launch of an external artifact: %v", err)
	}
	if len(e.plat.launched) != 1 {
		t.Fatalf("launched %+v", e.plat.launched)
	}
}

package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/kiln-project/kiln/internal/testenv"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/store"
)

// TestMain lets the test binary be the instances' supervisor, as kiln is.
func TestMain(m *testing.M) { testenv.Main(m) }

func need(t testing.TB) { testenv.Require(t, "rollout integration test", testenv.InstanceTools...) }

func cacheDir() string { return testenv.CacheDir() }

// variant returns the platformtest image with files added: a copy of the
// tar with the files appended (a later tar member replaces an earlier one
// on extraction). Cached beside the base image.
func variant(t testing.TB, files map[string]string) string {
	t.Helper()
	base := testenv.Image(t, "rollout integration test")
	if len(files) == 0 {
		return base
	}
	h := sha256.New()
	fmt.Fprint(h, filepath.Base(base))
	var names []string
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(h, "\x00%s\x00%s", n, files[n])
	}
	out := filepath.Join(cacheDir(), "rollout-"+hex.EncodeToString(h.Sum(nil)[:8])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	dir := t.TempDir()
	for n, body := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	if b, err := exec.Command("cp", base, tmp).CombinedOutput(); err != nil {
		t.Fatalf("copy image: %v: %s", err, b)
	}
	args := append([]string{"--append", "-f", tmp, "--owner=0", "--group=0", "--numeric-owner", "-C", dir}, names...)
	if b, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("append to image: %v: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Bodies the test versions serve.
func bodyOf(n int) string { return fmt.Sprintf("appserver version %d\n", n) }

// env is one test's kiln: a SQLite store, an artifact store, the local
// platform over its own data directory, and the service's front end
// running in-process.
type env struct {
	db     *store.DB
	arts   *artifact.Store
	plat   *local.Platform
	engine *Engine
	dir    string
	svc    *kiln.Service
	front  string // the front end's address
	stop   func()
	log    *slog.Logger
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func logLevel() slog.Level {
	if os.Getenv("KILN_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

// newEnv sets up kiln with image appserver and the given versions (their
// tar files), all ready, and a service "web" with replicas and surge.
func newEnv(t testing.TB, images []string, replicas, surge int, bake time.Duration) *env {
	t.Helper()
	need(t)
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: logLevel()}))
	db, err := store.Open(ctx, "", dir, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := testenv.Sign(t, db)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	plat, err := local.New(local.Config{DataDir: dir, Artifacts: arts, Logger: log, ProbeBinary: exe, Supervisor: []string{exe, "__supervise"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for _, img := range images {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		art, err := arts.Put(ctx, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art, BuiltBy: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := db.SetStatus(ctx, v.Ref(), st, "test"); err != nil {
				t.Fatal(err)
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: replicas, MaxSurge: surge,
		Listen: ln.Addr().String(), Health: kiln.HealthCheck{Kind: kiln.HealthHTTP, Path: "/healthz"}, BakeTime: bake}
	if err := db.CreateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	fe := &FrontEnd{Services: db, Service: "web", Logger: log, Listener: ln}
	go func() { done <- fe.Run(fctx) }()
	e := &env{db: db, arts: arts, plat: plat, dir: dir, svc: svc, front: ln.Addr().String(), log: log,
		stop: func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("front end: %v", err)
			}
		}}
	e.engine = &Engine{Services: db, Rollouts: db, Timeline: db, Registry: db, Logger: log,
		Launcher: &launch.Launcher{Registry: db, Platform: plat, Inventory: db, Key: key, Logger: log},
		Progress: testWriter{t}, HealthTimeout: 5 * time.Second}
	// Unpack every artifact once, outside the measured rollouts.
	for i := range images {
		v, err := db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: i + 1})
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("warm-%d", i+1)
		if _, err := plat.Launch(ctx, kiln.LaunchSpec{ID: id, Name: id, Artifact: *v.Provenance.Artifact, Timeout: time.Minute}); err != nil {
			t.Fatal(err)
		}
		if err := plat.Destroy(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		// Whatever a failed test left: destroy the service's instances.
		ms, _ := db.ListMembers(context.Background(), "web")
		for _, m := range ms {
			_ = plat.Destroy(context.Background(), m.InstanceID)
		}
		e.stop()
	})
	return e
}

// noInstancesBut checks that exactly the service's members exist on the
// platform (nothing leaked by failed launches or rollbacks).
func (e *env) noInstancesBut(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	ms, err := e.db.ListMembers(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range ms {
		want[m.InstanceID] = true
		if m.State != kiln.MemberActive {
			t.Errorf("member %s is %s after the rollout ended", m.InstanceID, m.State)
		}
	}
	sts, err := e.plat.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if !want[s.ID] {
			t.Errorf("instance %s (%s) exists on the platform but is no member of the service", s.ID, s.State)
		}
		delete(want, s.ID)
	}
	for id := range want {
		t.Errorf("member %s has no instance on the platform", id)
	}
}

var _ io.Writer = testWriter{}

package local

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/platformtest"
)

// TestMain lets the test binary be its own supervisor, as kiln is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "__supervise" {
		os.Exit(SupervisorMain(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// need skips (or fails under CI=true) when the machine cannot run instances.
func need(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, tool := range []string{"systemd-nspawn", "mmdebstrap", "nsenter", "tar"} {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = "needs " + tool
		}
	}
	if why == "" {
		return
	}
	ci.SkipOrFail(t, "local platform test "+why)
}

var image struct {
	once sync.Once
	path string
	err  error
}

// testImage bakes the platformtest image once per machine (cached in the
// temp dir across runs; a fresh machine bakes it in ~30 s).
func testImage(t testing.TB) string {
	t.Helper()
	need(t)
	image.once.Do(func() {
		image.path, image.err = platformtest.BakeImage(context.Background(), filepath.Join(os.TempDir(), "kiln-test-cache"))
	})
	if image.err != nil {
		t.Fatal(image.err)
	}
	return image.path
}

// env is one test's platform over its own data directory.
type env struct {
	p     *Platform
	store *artifact.Store
	art   kiln.Artifact
	dir   string
	mu    sync.Mutex
	ids   map[string]bool
}

func newEnv(t testing.TB) *env {
	t.Helper()
	tar := testImage(t)
	dir := t.TempDir()
	store, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tar)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	art, err := store.Put(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{
		DataDir:     dir,
		Artifacts:   store,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: logLevel()})),
		ProbeBinary: exe,
		Supervisor:  []string{exe, "__supervise"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, store: store, art: *art, dir: dir, ids: map[string]bool{}}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// recorder remembers the ids launched, so leftovers can be looked for by
// the names derived from them.
type recorder struct {
	*Platform
	e *env
}

func (r recorder) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	r.e.mu.Lock()
	r.e.ids[spec.ID] = true
	r.e.mu.Unlock()
	return r.Platform.Launch(ctx, spec)
}

// leftovers lists what exists on the host for instances of this env that
// are not in its data directory any more.
func (e *env) leftovers(t testing.TB) []string {
	var out []string
	mounts, err := overlayfs.MountsUnder(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		out = append(out, "mount "+m)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for id := range e.ids {
		if _, err := os.Stat(e.p.instanceDir(id)); err == nil {
			continue // still exists: not a leftover
		}
		m := e.p.machineName(id)
		if netnsExists(m) {
			out = append(out, "netns "+m)
		}
		if _, err := os.Stat(filepath.Join("/run/systemd/nspawn/propagate", m)); err == nil {
			out = append(out, "nspawn propagate dir "+m)
		}
	}
	// Processes: anything whose command line names this data directory.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), e.dir) {
			continue
		}
		out = append(out, "process "+filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

func (e *env) harness() *platformtest.Harness {
	return &platformtest.Harness{
		Platform:  recorder{e.p, e},
		Artifacts: e.store,
		Image:     e.art,
		Crash: func(t testing.TB, id string) {
			rec, err := readRecord(e.p.instanceDir(id))
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(rec.NspawnPID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill systemd-nspawn %d: %v", rec.NspawnPID, err)
			}
		},
		Leftovers: e.leftovers,
		Timeout:   time.Minute,
	}
}

func TestPlatformSuite(t *testing.T) {
	e := newEnv(t)
	platformtest.Run(t, e.harness())
}

func logLevel() slog.Level {
	if os.Getenv("KILN_TEST_DEBUG") != "" {
		return slog.LevelDebug
	}
	return slog.LevelWarn
}

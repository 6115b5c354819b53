package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// Cancelling a build in the middle of a step leaves no version, no mount
// and no process behind.
func TestInterruptLeavesNothing(t *testing.T) {
	b := needBuilder(t)
	est := estate(t, t.TempDir(), map[string]string{"slow.kiln.hcl": `image "slow" {
` + debianBlock + `
  shell {
    inline = ["touch /etc/started", "sleep 120"]
  }
}
`})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var sawStep bool
	opts := Options{Progress: testWriter{t}, OnEvent: func(e Event) {
		if e.Kind == EventStepStart && strings.HasPrefix(e.Name, "shell") {
			sawStep = true
			time.AfterFunc(2*time.Second, cancel)
		}
	}}
	_, err := b.Build(ctx, est, est.Images["slow"], opts)
	if err == nil {
		t.Fatal("a cancelled build succeeded")
	}
	if !sawStep {
		t.Fatalf("the build failed before the shell step: %v", err)
	}
	if _, err := b.Registry.LatestVersion(context.Background(), "slow", ""); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("a version of slow is registered after the interrupt (err %v)", err)
	}
	assertNoLeftovers(t, b.DataDir)
}

func assertNoLeftovers(t *testing.T, dataDir string) {
	t.Helper()
	buildDir := filepath.Join(dataDir, "build")
	if m, _ := overlayfs.MountsUnder(buildDir); len(m) > 0 {
		t.Errorf("mounts left under %s: %v", buildDir, m)
	}
	if p := bake.ProcessesUnder(buildDir); len(p) > 0 {
		t.Errorf("processes left running: %v", p)
	}
	ents, _ := os.ReadDir(buildDir)
	for _, e := range ents {
		if e.IsDir() {
			t.Errorf("build directory left: %s", e.Name())
		}
	}
}

// Cleanup undoes what a build killed with SIGKILL leaves: a build
// directory whose lock nobody holds, an overlay mounted in it and an
// nspawn container still running there.
func TestCleanupAfterKill(t *testing.T) {
	b := needBuilder(t)
	// A layer to run on: the shared bootstrap, or any small directory tree.
	lower := t.TempDir()
	for _, d := range []string{"bin", "etc", "usr"} {
		os.MkdirAll(filepath.Join(lower, d), 0o755)
	}
	dataDir := t.TempDir()
	dir := filepath.Join(dataDir, "build", "20990101T000000-deadbeef0000")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "lock"), []byte("999999\n"), 0o600)
	o := &overlayfs.Overlay{Lowers: []string{lower}, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), Target: filepath.Join(dir, "merged")}
	if err := o.Mount(); err != nil {
		t.Fatal(err)
	}
	// A process that names the build directory, as a stale nspawn does
	// ("; true" keeps sh from exec-ing sleep and losing its arguments).
	sleeper := exec.Command("/bin/sh", "-c", "sleep 300; true", "sh", "-D", o.Target)
	sleeper.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(-sleeper.Process.Pid, syscall.SIGKILL)
	done := make(chan struct{})
	go func() { sleeper.Wait(); close(done) }()

	rep, err := Cleanup(context.Background(), dataDir, shared.arts, b.Logger)
	if err != nil {
		t.Fatal(err)
	}
	// The shell may be caught between fork and exec of sleep, when its
	// child still carries the same command line: one or two processes.
	if len(rep.Builds) != 1 || len(rep.Mounts) != 1 || len(rep.Processes) < 1 || len(rep.Processes) > 2 {
		t.Errorf("cleanup report %+v (%s), want one build, one mount, the stale process", rep, rep)
	}
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		t.Error("the stale process is still running")
		sleeper.Process.Kill()
	}
	assertNoLeftovers(t, dataDir)

	// A live build's directory is left alone.
	w, err := newWorkdir(dataDir, b.Logger)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	rep, err = Cleanup(context.Background(), dataDir, shared.arts, b.Logger)
	if err != nil || !rep.Empty() {
		t.Errorf("cleanup with a live build: %v, %s", err, rep)
	}
	if _, err := os.Stat(w.dir); err != nil {
		t.Errorf("cleanup removed a live build's directory: %v", err)
	}
}

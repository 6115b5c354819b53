package build

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
	"github.com/kiln-project/kiln/store"
)

const childEnv = "KILN_BUILD_TEST_CHILD"

// childNoCache=1 makes the child build run every step.
const childNoCache = "KILN_BUILD_TEST_CHILD_NO_CACHE"

// buildChild runs in a re-executed test binary: it builds the image named
// by KILN_BUILD_TEST_CHILD=DATADIR:ESTATE:IMAGE and prints progress, until
// the parent kills it.
func buildChild() int {
	parts := strings.SplitN(os.Getenv(childEnv), ":", 3)
	ctx := context.Background()
	reg, err := store.Open(ctx, "", parts[0], slog.New(slog.DiscardHandler), nil)
	if err != nil {
		fmt.Println("child:", err)
		return 1
	}
	arts, _ := artifact.Open(parts[0])
	est, diags := definition.Load(parts[1], definition.Options{})
	if diags.HasErrors() {
		fmt.Println("child:", diags)
		return 1
	}
	b := &Builder{Registry: reg, Artifacts: arts, DataDir: parts[0]}
	_, err = b.Build(ctx, est, est.Images[parts[2]], Options{Progress: os.Stdout, NoCache: os.Getenv(childNoCache) == "1"})
	fmt.Println("child: build returned", err)
	return 0
}

// A build killed with SIGKILL in the middle of a step leaves its overlay
// mounted and nspawn running; Cleanup, as the next kiln start runs it,
// removes them and reports it.
func TestKillThenCleanup(t *testing.T) {
	b := needBuilder(t)
	dir := t.TempDir()
	estate(t, dir, map[string]string{"killed.kiln.hcl": `image "killed" {
` + debianBlock + `
  shell {
    inline = ["sleep 300"]
  }
}
`})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+shared.dataDir+":"+dir+":killed")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	inStep := false
	for sc.Scan() {
		t.Log("child: " + sc.Text())
		if strings.Contains(sc.Text(), "] shell") {
			inStep = true
			break
		}
	}
	if !inStep {
		cmd.Wait()
		t.Fatal("the child build never reached its shell step")
	}
	buildDir := filepath.Join(shared.dataDir, "build")
	deadline := time.Now().Add(30 * time.Second)
	for len(bake.ProcessesUnder(buildDir)) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	mounts, _ := overlayfs.MountsUnder(buildDir)
	procs := bake.ProcessesUnder(buildDir)
	if len(mounts) == 0 || len(procs) == 0 {
		t.Fatalf("after kill -9: %d mounts, %d processes; the test expects leftovers to clean", len(mounts), len(procs))
	}
	rep, err := Cleanup(context.Background(), shared.dataDir, shared.arts, b.Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cleanup: %s", rep)
	if len(rep.Builds) != 1 || len(rep.Mounts) == 0 || len(rep.Processes) == 0 {
		t.Errorf("cleanup report %+v, want one build with its mounts and processes", rep)
	}
	assertNoLeftovers(t, shared.dataDir)
	if _, err := b.Registry.LatestVersion(context.Background(), "killed", ""); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("a version of the killed build is registered (err %v)", err)
	}
}

// A build killed with SIGKILL while its bootstrap runs in memory leaves
// the tmpfs mounted and mmdebstrap running; Cleanup unmounts and stops
// them, and nothing of the build stays.
func TestKillDuringBootstrapInMemory(t *testing.T) {
	b := needBuilder(t)
	if memAvailable() < scratchMinAvailable {
		ci.SkipOrFail(t, "the machine lacks the 2 GiB of available memory a bootstrap in memory needs; TestKillThenCleanup covers bootstraps on disk")
	}
	dir := t.TempDir()
	estate(t, dir, map[string]string{"killed-in-memory.kiln.hcl": `image "killed-in-memory" {
` + debianBlock + `
}
`})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	// No cache: the bootstrap runs even when a test before made it.
	cmd.Env = append(os.Environ(), childEnv+"="+shared.dataDir+":"+dir+":killed-in-memory", childNoCache+"=1")
	cmd.Stdout, cmd.Stderr = testWriter{t}, testWriter{t}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	buildDir := filepath.Join(shared.dataDir, "build")
	inMemory := func() bool {
		mounts, _ := overlayfs.MountsUnder(buildDir)
		for _, m := range mounts {
			if filepath.Base(m) == "scratch" {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !inMemory() || len(bake.ProcessesUnder(buildDir)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the child build never bootstrapped in a tmpfs")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // well into mmdebstrap
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if !inMemory() {
		t.Fatal("after kill -9 the tmpfs is gone; the test expects it left for Cleanup")
	}
	rep, err := Cleanup(context.Background(), shared.dataDir, shared.arts, b.Logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cleanup: %s", rep)
	if len(rep.Builds) != 1 || len(rep.Mounts) == 0 {
		t.Errorf("cleanup report %+v, want one build with its tmpfs", rep)
	}
	assertNoLeftovers(t, shared.dataDir)
}

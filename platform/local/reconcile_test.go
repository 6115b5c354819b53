package local

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/kiln-project/kiln/internal/overlayfs"
)

// TestReconcileAfterSupervisorKill kills an instance's supervisor with
// SIGKILL, as a crash or an OOM kill would, then starts a new Platform on
// the same data directory, as a restarted kiln would: Reconcile must report
// the instance crashed and leave no process, mount or namespace behind.
func TestReconcileAfterSupervisorKill(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	h := e.harness()
	id := "reconcile-1"
	if _, err := h.Platform.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "rc", Artifact: e.art,
		Ports: []kiln.PortForward{{Host: "127.0.0.1:0", Guest: 80}}, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	rec, err := readRecord(e.p.instanceDir(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(rec.SupervisorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if live, _ := instancedir.Supervised(e.p.instanceDir(id)); !live {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("supervisor lock still held after SIGKILL")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !instancedir.Alive(rec.NspawnPID, rec.NspawnStart) || !instancedir.Alive(rec.LeaderPID, rec.LeaderStart) {
		t.Fatal("the instance should outlive its killed supervisor until reconciled")
	}
	if st, err := e.p.State(ctx, id); err != nil || st != kiln.InstanceCrashed {
		t.Errorf("State without supervisor = %q, %v; want crashed", st, err)
	}

	// A dir without a record (a launch killed early) and an abandoned unpack.
	if err := os.Mkdir(e.p.instanceDir("half-launched"), 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(e.p.dataDir, "rootfs", ".tmp-abc-999999999-x")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}

	restarted, err := New(Config{DataDir: e.dir, Artifacts: e.store, ProbeBinary: e.p.probe, Supervisor: e.p.supervisor})
	if err != nil {
		t.Fatal(err)
	}
	got, err := restarted.Reconcile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != id || got[0].State != kiln.InstanceCrashed || got[0].Reason == "" {
		t.Fatalf("Reconcile = %+v; want %s crashed with a reason", got, id)
	}
	if instancedir.Alive(rec.NspawnPID, rec.NspawnStart) || instancedir.Alive(rec.LeaderPID, rec.LeaderStart) {
		t.Error("Reconcile left the unsupervised instance's processes running")
	}
	if netnsExists(rec.Netns) {
		t.Error("Reconcile left the network namespace")
	}
	if m, _ := overlayfs.MountsUnder(e.dir); len(m) > 0 {
		t.Errorf("Reconcile left mounts: %v", m)
	}
	if _, err := os.Stat(e.p.instanceDir("half-launched")); !os.IsNotExist(err) {
		t.Error("Reconcile kept an instance directory without record")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Error("Reconcile kept an abandoned unpack")
	}
	// The upper dir is kept until Destroy, for forensics and drift.
	if _, err := os.Stat(restarted.UpperDir(id)); err != nil {
		t.Errorf("upper dir of the crashed instance: %v", err)
	}
	if err := restarted.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if l := e.leftovers(t); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}
}

package rollout

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/platformtest"
	"github.com/kiln-project/kiln/platform/set"
	"github.com/kiln-project/kiln/platform/vm"
	"github.com/kiln-project/kiln/platform/vm/disk"
	"github.com/kiln-project/kiln/store"
)

// vmDisks builds the VM test image's disk twice, once serving bodyOf(1)
// and once bodyOf(2) (each with /healthz), with this test binary as the
// guest agent: the root filesystem is unpacked once and only the page
// changes between the builds.
func vmDisks(t *testing.T) [2]string {
	t.Helper()
	testenv.Require(t, "VM rollout test", "qemu-system-x86_64", "qemu-img", "mmdebstrap", "mkfs.ext4", "sfdisk", "mkfs.vfat", "mcopy", "tar")
	if _, err := os.Stat("/usr/share/ovmf/OVMF.fd"); err != nil {
		ci.SkipOrFail(t, "VM rollout test needs OVMF (apt-get install ovmf)")
	}
	ctx := context.Background()
	tarball, err := platformtest.BakeVMImage(ctx, cacheDir())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	root := filepath.Join(work, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("tar", "-xpf", tarball, "--numeric-owner", "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("unpack %s: %v: %s", tarball, err, b)
	}
	var out [2]string
	for i := range out {
		www := filepath.Join(root, "srv", "www")
		if err := os.MkdirAll(www, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range map[string]string{"index.html": bodyOf(i + 1), "healthz": "ok\n"} {
			if err := os.WriteFile(filepath.Join(www, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out[i] = filepath.Join(work, "v"+string(rune('1'+i))+".qcow2")
		if _, err := disk.Build(ctx, disk.Spec{Rootfs: root, Seed: fmt.Sprintf("sha256:%064d", i+1), Output: out[i], Agent: exe, TempDir: work}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVMRolloutZeroDowntime rolls a two-instance service on the VM
// platform from nothing to version 1, then under a bounded load loop to
// version 2, both new instances booting side by side while the old ones
// serve (surge 2, 100% minimum healthy): no request through the front end
// fails, the load sees both versions, and afterwards the service's
// instances run version 2 on the VM platform. Destroying them leaves no
// QEMU process, overlay or instance directory. Four TCG boots, two at a
// time: the cheapest rollout that replaces two instances.
func TestVMRolloutZeroDowntime(t *testing.T) {
	disks := vmDisks(t)
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
	exe, _ := os.Executable()
	var vmp *vm.Platform
	plats, err := set.New(db, set.Driver{Name: "vm", Open: func() (kiln.Platform, error) {
		p, err := vm.New(vm.Config{DataDir: dir, Artifacts: arts, Logger: log, Supervisor: []string{exe, "__vm-supervise"}})
		vmp = p
		if err != nil {
			return nil, err
		}
		return p, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plats.Get("vm"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for _, d := range disks {
		f, err := os.Open(d)
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
		os.Remove(d)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	svc := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 2, MaxSurge: 2, Platform: "vm",
		Listen: ln.Addr().String(), Health: kiln.HealthCheck{Kind: kiln.HealthHTTP, Path: "/healthz"}, BakeTime: time.Second}
	if err := db.CreateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- (&FrontEnd{Services: db, Service: "web", Logger: log, Listener: ln}).Run(fctx) }()
	t.Cleanup(func() {
		ms, _ := db.ListMembers(context.Background(), "web")
		for _, m := range ms {
			_ = plats.Destroy(context.Background(), m.InstanceID)
		}
		cancel()
		<-done
	})
	engine := &Engine{Services: db, Rollouts: db, Timeline: db, Registry: db, Logger: log,
		Launcher: &launch.Launcher{Registry: db, Platform: plats, Inventory: db, Key: key, Logger: log},
		Progress: testWriter{t}, HealthTimeout: 30 * time.Second, BootTimeout: vmBootTimeout()}
	ref := func(n int) kiln.VersionRef { return kiln.VersionRef{Image: "appserver", Number: n} }

	t0 := time.Now()
	r, err := engine.Start(ctx, "web", ref(1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != kiln.RolloutSucceeded {
		t.Fatalf("first rollout: %s (%s)", r.State, r.Reason)
	}
	t.Logf("first rollout (2 VMs from nothing, in parallel): %s", time.Since(t0).Round(time.Millisecond))

	l := startLoad(ln.Addr().String(), 1, 200_000, 2*vmBootTimeout()+5*time.Minute)
	t0 = time.Now()
	r, err = engine.Start(ctx, "web", ref(2), Options{})
	took := time.Since(t0)
	l.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rollout to appserver-2 on VMs: %s in %d batches %v; load: %s; bodies %v", took.Round(time.Millisecond), r.Batch, r.BatchTimes, l, l.bodies)
	if r.State != kiln.RolloutSucceeded {
		t.Fatalf("rollout to 2: %s (%s)", r.State, r.Reason)
	}
	if len(l.failed) > 0 {
		t.Errorf("%d of %d requests failed during the rollout, first: %s", len(l.failed), l.sent, l.failed[0])
	}
	if l.bodies[bodyOf(1)] == 0 || l.bodies[bodyOf(2)] == 0 {
		t.Errorf("the load saw bodies %v; want both versions during the rollout", l.bodies)
	}
	ms, err := db.ListMembers(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d members after the rollout, want 2", len(ms))
	}
	for _, m := range ms {
		inst, err := db.FindInstance(ctx, m.InstanceID)
		if err != nil {
			t.Fatal(err)
		}
		if m.Version != ref(2) || inst.Platform != "vm" {
			t.Errorf("member %s: %s on %q, want appserver-2 on vm", m.InstanceID, m.Version, inst.Platform)
		}
		if st, err := plats.State(ctx, m.InstanceID); err != nil || (st != kiln.InstanceRunning && st != kiln.InstanceDegraded) {
			t.Errorf("member %s: state %q %v", m.InstanceID, st, err)
		}
	}
	// The replaced VMs are gone already; destroying the current ones
	// leaves nothing of any.
	for _, m := range ms {
		if err := engine.Launcher.Destroy(ctx, m.InstanceID, "test finished"); err != nil {
			t.Fatal(err)
		}
	}
	if left := vmLeftovers(dir); len(left) > 0 {
		t.Errorf("left on the host: %v", left)
	}
	if sts, err := vmp.Reconcile(ctx); err != nil || len(sts) != 0 {
		t.Errorf("the VM platform still sees %v (%v)", sts, err)
	}
}

// vmLeftovers lists processes that name the data directory (QEMU names
// its overlay, the supervisor its instance directory) and instance
// directories (each holds an overlay).
func vmLeftovers(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), dir+"/") {
			out = append(out, "process "+filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	ents, _ := os.ReadDir(filepath.Join(dir, "vm", "instances"))
	for _, e := range ents {
		out = append(out, "instance directory "+e.Name())
	}
	return out
}

// vmBootTimeout bounds each VM boot: KILN_TEST_VM_TIMEOUT, or 5 minutes
// (TCG on a busy machine).
func vmBootTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("KILN_TEST_VM_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Minute
}

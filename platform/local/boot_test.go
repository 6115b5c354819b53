package local

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// TestLaunchDegraded boots an image with a unit that fails: the launch
// succeeds as degraded and names the unit.
func TestLaunchDegraded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// The test image plus a failing unit, appended to a copy of the tar
	// (later members win on extraction).
	extra := t.TempDir()
	unitDir := filepath.Join(extra, "etc/systemd/system")
	if err := os.MkdirAll(filepath.Join(unitDir, "multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := "[Unit]\nDescription=fails on purpose\n[Service]\nType=oneshot\nExecStart=/bin/false\n[Install]\nWantedBy=multi-user.target\n"
	if err := os.WriteFile(filepath.Join(unitDir, "kiln-fails.service"), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/kiln-fails.service", filepath.Join(unitDir, "multi-user.target.wants/kiln-fails.service")); err != nil {
		t.Fatal(err)
	}
	tarCopy := filepath.Join(extra, "degraded.tar")
	in, err := os.ReadFile(testImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarCopy, in, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "--append", "--file="+tarCopy, "--numeric-owner", "--owner=0", "--group=0", "-C", extra,
		"./etc/systemd/system/kiln-fails.service", "./etc/systemd/system/multi-user.target.wants/kiln-fails.service")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar --append: %v: %s", err, out)
	}
	f, err := os.Open(tarCopy)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	art, err := e.store.Put(ctx, f)
	if err != nil {
		t.Fatal(err)
	}

	id := "degraded-1"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	res, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "deg", Artifact: *art, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != kiln.InstanceDegraded || !slices.Contains(res.FailedUnits, "kiln-fails.service") {
		t.Errorf("launch = %+v; want degraded with kiln-fails.service failed", res)
	}
	if st, err := e.p.State(ctx, id); err != nil || st != kiln.InstanceDegraded {
		t.Errorf("State = %q, %v; want degraded", st, err)
	}
}

// TestLaunchTimeout checks that a boot slower than the timeout fails with
// an error that says so and shows the console, and leaves nothing behind.
func TestLaunchTimeout(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.p.rootfs(ctx, e.art.Digest); err != nil {
		t.Fatal(err)
	}
	for _, timeout := range []time.Duration{time.Millisecond, 400 * time.Millisecond} {
		id := "timeout-" + timeout.String()
		_, err := recorder{e.p, e}.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "to", Artifact: e.art, Timeout: timeout})
		if err == nil {
			t.Logf("booted within %s; nothing to check", timeout)
			_ = e.p.Destroy(ctx, id)
			continue
		}
		if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "raise the launch timeout") {
			t.Errorf("timeout %s: %v (%s); want an unavailable error telling to raise the timeout", timeout, err, kiln.ErrorCode(err))
		}
		if _, err := os.Stat(e.p.instanceDir(id)); !os.IsNotExist(err) {
			t.Errorf("timeout %s: instance directory left", timeout)
		}
	}
	if l := e.leftovers(t); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}
}

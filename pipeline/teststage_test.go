package pipeline_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/platform/platformtest"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/verify"
)

// TestMain lets the test binary serve as kiln's supervisor and, inside the
// instance, as the server-test probe, as the kiln binary does.
func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	reg    *store.DB
	arts   *artifact.Store
	plat   *local.Platform
	tester *pipeline.Tester
	out    *bytes.Buffer
}

// newEnv registers the small bootable test image as candidate version
// web-1 in a fresh registry.
func newEnv(t testing.TB) *env {
	imagePath := testenv.Image(t, "test stage")
	dir := t.TempDir()
	ctx := context.Background()
	reg, err := store.Open(ctx, "", dir, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	key := testenv.Sign(t, reg)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(imagePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	art, err := arts.Put(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	plat, err := local.New(local.Config{DataDir: dir, Artifacts: arts, ProbeBinary: exe, Supervisor: []string{exe, "__supervise"},
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Method: kiln.MethodFresh, Artifact: art, BuiltBy: "test"}}); err != nil {
		t.Fatal(err)
	}
	out := &bytes.Buffer{}
	return &env{reg: reg, arts: arts, plat: plat, out: out,
		tester: &pipeline.Tester{Registry: reg, Artifacts: arts, Progress: out,
			Launcher: &launch.Launcher{Registry: reg, Platform: plat, Key: key}}}
}

func suite(t *testing.T, yaml string) *verify.Suite {
	t.Helper()
	s, err := verify.Parse("tests.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const passing = `
file:
  /srv/www/index.html:
    exists: true
    contains: ["hello from a kiln test instance"]
http:
  http://127.0.0.1/:
    status: 200
    body: ["hello from a kiln test instance"]
port:
  # busybox httpd listens on the IPv6 wildcard (dual-stack)
  tcp6:80:
    listening: true
user:
  root:
    exists: true
command:
  # test residue: writes a file and creates a user inside the instance
  touch /etc/residue && useradd residue && echo done:
    exit-status: 0
    stdout: ["done"]
`

func TestStagePassesAndLeavesNoResidue(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ref := kiln.VersionRef{Image: "web", Number: 1}
	v, _ := e.reg.FindVersion(ctx, ref)
	before, err := platformtest.Digest(ctx, e.arts, v.Provenance.Artifact.Digest)
	if err != nil {
		t.Fatal(err)
	}

	res, err := e.tester.Test(ctx, ref, pipeline.TestOptions{Suite: suite(t, passing)})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.out)
	}
	if !res.Passed || res.Status != kiln.StatusTested {
		var b bytes.Buffer
		if res.Report != nil {
			_ = (verify.Text{}).Write(&b, res.Report)
		}
		t.Fatalf("result %+v\n%s\n%s", res, e.out, &b)
	}
	v, _ = e.reg.FindVersion(ctx, ref)
	if v.Status != kiln.StatusTested {
		t.Errorf("status = %s", v.Status)
	}
	for _, name := range []string{pipeline.ReportAttachment, pipeline.JUnitAttachment} {
		if _, err := e.reg.Attachment(ctx, ref, name); err != nil {
			t.Errorf("attachment %s: %v", name, err)
		}
	}
	if st, err := e.plat.State(ctx, res.InstanceID); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("test instance still there: state %s, err %v", st, err)
	}
	// The stored image is unchanged and a fresh instance has none of the residue.
	after, err := platformtest.Digest(ctx, e.arts, v.Provenance.Artifact.Digest)
	if err != nil || after != before {
		t.Fatalf("artifact digest %s → %s (%v)", before, after, err)
	}
	if _, err := e.plat.Launch(ctx, kiln.LaunchSpec{ID: "fresh", Name: "fresh", Version: ref, Artifact: *v.Provenance.Artifact}); err != nil {
		t.Fatal(err)
	}
	defer e.plat.Destroy(context.WithoutCancel(ctx), "fresh")
	for _, argv := range [][]string{{"test", "-e", "/etc/residue"}, {"id", "residue"}} {
		code, err := e.plat.Exec(ctx, "fresh", argv, kiln.ExecIO{})
		if err != nil || code == 0 {
			t.Errorf("%v in a fresh instance: exit %d, %v — test residue leaked into the image", argv, code, err)
		}
	}

	// A version that is no longer a candidate is refused.
	if _, err := e.tester.Test(ctx, ref, pipeline.TestOptions{Suite: suite(t, passing)}); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("second test of a tested version: %v", err)
	}
}

func TestStageFailsVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ref := kiln.VersionRef{Image: "web", Number: 1}
	res, err := e.tester.Test(ctx, ref, pipeline.TestOptions{Suite: suite(t, `
package:
  nginx:
    installed: true
file:
  /srv/www/index.html:
    exists: true
`)})
	if err != nil {
		t.Fatalf("%v\n%s", err, e.out)
	}
	if res.Passed || res.Status != kiln.StatusFailed || !strings.Contains(res.Reason, "1 of 2 checks failed") {
		t.Fatalf("result %+v", res)
	}
	v, _ := e.reg.FindVersion(ctx, ref)
	if v.Status != kiln.StatusFailed {
		t.Errorf("status = %s", v.Status)
	}
	h, _ := e.reg.History(ctx, ref)
	if last := h[len(h)-1]; !strings.Contains(last.Reason, "checks failed") {
		t.Errorf("history reason = %q", last.Reason)
	}
	if st, err := e.plat.State(ctx, res.InstanceID); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("failed test left its instance: %s %v", st, err)
	}
}

func TestStageCancelledCleansUp(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	ref := kiln.VersionRef{Image: "web", Number: 1}
	// Cancel while a slow check runs inside the instance.
	go func() {
		for !strings.Contains(e.out.String(), "running") {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		cancel()
	}()
	_, err := e.tester.Test(ctx, ref, pipeline.TestOptions{Suite: suite(t, `
command:
  sleep 30:
    exit-status: 0
    timeout: 40000
`)})
	if err == nil {
		t.Fatal("cancelled test stage returned no error")
	}
	v, _ := e.reg.FindVersion(context.Background(), ref)
	if v.Status != kiln.StatusCandidate {
		t.Errorf("cancelled stage moved status to %s", v.Status)
	}
	sts, err := e.plat.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.State != kiln.InstanceDestroyed {
			t.Errorf("instance left after cancel: %+v", s)
		}
	}
}

// BenchmarkTestStage measures the whole test stage on a small image with
// 10 checks: launch from the final image, boot to running, probe, destroy.
// The image's rootfs is unpacked once, before the timer starts.
func BenchmarkTestStage(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	ref := kiln.VersionRef{Image: "web", Number: 1}
	s, err := verify.Parse("bench.yaml", []byte(benchSuite))
	if err != nil {
		b.Fatal(err)
	}
	// Warm the rootfs cache.
	if _, err := e.tester.Test(ctx, ref, pipeline.TestOptions{Suite: s, Retest: true}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := e.tester.Test(ctx, ref, pipeline.TestOptions{Suite: s, Retest: true})
		if err != nil || !res.Passed {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

const benchSuite = `
file:
  /srv/www/index.html:
    exists: true
    mode: "0644"
    contains: ["hello from a kiln test instance"]
http:
  http://127.0.0.1/:
    status: 200
    body: ["hello from a kiln test instance"]
port:
  tcp6:80:
    listening: true
user:
  root:
    exists: true
    uid: 0
command:
  cat /etc/os-release:
    exit-status: 0
    stdout: ["ID=debian"]
`

package platformtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// Harness is what a driver hands the suite.
type Harness struct {
	Platform  kiln.Platform
	Artifacts kiln.ArtifactStore
	// Image is a bootable artifact in Artifacts that behaves like BakeImage's:
	// it serves ImageHTTPBody on ImageHTTPPort and its /etc/os-release holds
	// ImageOSRelease. RunContract needs only that Artifacts holds it.
	Image kiln.Artifact
	// Crash ends the instance's process behind the platform's back, as a
	// crash would. Nil skips the crash test.
	Crash func(t testing.TB, id string)
	// Leftovers lists what the driver left on the host (processes, mounts,
	// namespaces, files) for instances that no longer exist. Nil skips those
	// checks.
	Leftovers func(t testing.TB) []string
	// Timeout bounds each launch; zero means a minute.
	Timeout time.Duration
}

var seq atomic.Int64

func (h *Harness) id(t testing.TB) string {
	return fmt.Sprintf("pt-%d-%d", time.Now().UnixNano()%1e6, seq.Add(1))
}

func (h *Harness) launch(ctx context.Context, t testing.TB, id string, ports ...kiln.PortForward) *kiln.LaunchResult {
	t.Helper()
	timeout := h.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	t.Cleanup(func() {
		if err := h.Platform.Destroy(context.Background(), id); err != nil {
			t.Errorf("cleanup: destroy %s: %v", id, err)
		}
	})
	res, err := h.Platform.Launch(ctx, kiln.LaunchSpec{
		ID: id, Name: "pt", Version: kiln.VersionRef{Image: "platformtest", Number: 1},
		Artifact: h.Image, Ports: ports, Timeout: timeout,
	})
	if err != nil {
		t.Fatalf("launch %s: %v", id, err)
	}
	if res.State != kiln.InstanceRunning && res.State != kiln.InstanceDegraded {
		t.Fatalf("launch %s: state %q, want running or degraded", id, res.State)
	}
	if res.State == kiln.InstanceDegraded && len(res.FailedUnits) == 0 {
		t.Errorf("launch %s: degraded without failed units listed", id)
	}
	return res
}

// run runs a command in the instance and returns its exit status and output.
func (h *Harness) run(ctx context.Context, t testing.TB, id string, stdin string, argv ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	var in io.Reader
	if stdin != "" {
		in = strings.NewReader(stdin)
	}
	code, err := h.Platform.Exec(ctx, id, argv, kiln.ExecIO{Stdin: in, Stdout: &out, Stderr: &errb})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", argv, id, err)
	}
	return code, out.String(), errb.String()
}

func (h *Harness) digest(ctx context.Context, t testing.TB) {
	t.Helper()
	got, err := Digest(ctx, h.Artifacts, h.Image.Digest)
	if err != nil {
		t.Fatalf("re-hash artifact: %v", err)
	}
	if got != h.Image.Digest {
		t.Fatalf("artifact %s now hashes to %s: an instance wrote into the stored image", h.Image.Digest, got)
	}
}

func (h *Harness) noLeftovers(t testing.TB) {
	t.Helper()
	if h.Leftovers == nil {
		return
	}
	if l := h.Leftovers(t); len(l) > 0 {
		t.Errorf("left on the host after destroy:\n  %s", strings.Join(l, "\n  "))
	}
}

// Run runs the whole suite, RunBoot then RunContract: what a driver that
// boots images must pass. Subtests run one after the other; each destroys
// what it launched.
func Run(t *testing.T, h *Harness) {
	RunBoot(t, h)
	RunContract(t, h)
}

// RunBoot runs what only a platform that boots the image can show:
// commands run inside the instance, forwarded ports reach its server, and
// nothing an instance writes reaches the stored image or the next instance.
func RunBoot(t *testing.T, h *Harness) {
	ctx := context.Background()
	t.Run("LaunchExecForward", func(t *testing.T) { testLaunchExecForward(ctx, t, h) })
	t.Run("NoResidue", func(t *testing.T) { testNoResidue(ctx, t, h) })
}

// RunContract runs what every kiln.Platform must do, test doubles
// included: the instance lifecycle (launch, stop, destroy, crash), the
// refusals and their error codes, and launches cancelled part way leaving
// nothing behind. It needs h.Image only to be in h.Artifacts.
func RunContract(t *testing.T, h *Harness) {
	ctx := context.Background()
	t.Run("StopDestroy", func(t *testing.T) { testStopDestroy(ctx, t, h) })
	t.Run("Crash", func(t *testing.T) { testCrash(ctx, t, h) })
	t.Run("Refusals", func(t *testing.T) { testRefusals(ctx, t, h) })
	t.Run("CancelledLaunch", func(t *testing.T) { testCancelledLaunch(ctx, t, h) })
}

func testLaunchExecForward(ctx context.Context, t *testing.T, h *Harness) {
	id := h.id(t)
	res := h.launch(ctx, t, id, kiln.PortForward{Host: "127.0.0.1:0", Guest: ImageHTTPPort})
	if st, err := h.Platform.State(ctx, id); err != nil || (st != kiln.InstanceRunning && st != kiln.InstanceDegraded) {
		t.Fatalf("State = %q, %v; want running", st, err)
	}

	code, out, _ := h.run(ctx, t, id, "", "cat", "/etc/os-release")
	if code != 0 || !strings.Contains(out, ImageOSRelease) {
		t.Errorf("cat /etc/os-release: status %d, output %q; want 0 and %q", code, out, ImageOSRelease)
	}
	if code, _, _ := h.run(ctx, t, id, "", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("sh -c 'exit 7': status %d, want 7", code)
	}
	if code, out, _ := h.run(ctx, t, id, "piped in\n", "cat"); code != 0 || out != "piped in\n" {
		t.Errorf("cat with stdin: status %d, output %q", code, out)
	}
	if _, _, errs := h.run(ctx, t, id, "", "sh", "-c", "echo oops >&2"); errs != "oops\n" {
		t.Errorf("stderr = %q, want oops", errs)
	}
	// The command really runs inside: PID 1 there is the instance's init.
	if _, out, _ := h.run(ctx, t, id, "", "cat", "/proc/1/comm"); strings.TrimSpace(out) != "systemd" {
		t.Errorf("/proc/1/comm inside = %q, want systemd", out)
	}

	// A cancelled exec returns promptly.
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	_, err := h.Platform.Exec(cctx, id, []string{"sleep", "30"}, kiln.ExecIO{})
	cancel()
	if err == nil || time.Since(start) > 10*time.Second {
		t.Errorf("exec sleep 30 with a 300ms context: err %v after %s; want an error soon", err, time.Since(start))
	}

	if len(res.Ports) != 1 || strings.HasSuffix(res.Ports[0].Host, ":0") {
		t.Fatalf("LaunchResult.Ports = %v; want the bound address", res.Ports)
	}
	resp, err := http.Get("http://" + res.Ports[0].Host + "/")
	if err != nil {
		t.Fatalf("HTTP through forwarded port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != ImageHTTPBody {
		t.Errorf("HTTP through forwarded port: %d %q; want 200 %q", resp.StatusCode, body, ImageHTTPBody)
	}
}

func testNoResidue(ctx context.Context, t *testing.T, h *Harness) {
	h.digest(ctx, t)
	id := h.id(t)
	h.launch(ctx, t, id)
	script := "echo residue > /root/residue && echo x >> /etc/motd && useradd -M residue && rm -f /srv/www/index.html"
	if code, _, errs := h.run(ctx, t, id, "", "sh", "-c", script); code != 0 {
		t.Fatalf("write residue: status %d: %s", code, errs)
	}
	if code, _, _ := h.run(ctx, t, id, "", "test", "-f", "/root/residue"); code != 0 {
		t.Fatalf("residue not visible inside the instance that wrote it")
	}
	if err := h.Platform.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.digest(ctx, t)

	fresh := h.id(t)
	h.launch(ctx, t, fresh)
	checks := [][]string{
		{"test", "!", "-e", "/root/residue"},
		{"sh", "-c", "! grep -q '^residue:' /etc/passwd"},
		{"test", "-f", "/srv/www/index.html"},
		{"sh", "-c", "! grep -qx x /etc/motd"},
	}
	for _, c := range checks {
		if code, _, _ := h.run(ctx, t, fresh, "", c...); code != 0 {
			t.Errorf("fresh instance: %v failed: residue of the earlier instance reached the image", c)
		}
	}
	if err := h.Platform.Destroy(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	h.digest(ctx, t)
	h.noLeftovers(t)
}

func testStopDestroy(ctx context.Context, t *testing.T, h *Harness) {
	id := h.id(t)
	h.launch(ctx, t, id)
	if err := h.Platform.Stop(ctx, id); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if st, err := h.Platform.State(ctx, id); err != nil || st != kiln.InstanceStopped {
		t.Errorf("after stop: State = %q, %v; want stopped", st, err)
	}
	if err := h.Platform.Stop(ctx, id); err != nil {
		t.Errorf("second stop: %v", err)
	}
	if _, err := h.Platform.Exec(ctx, id, []string{"true"}, kiln.ExecIO{}); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("exec in a stopped instance: %v; want a %s error", err, kiln.ECONFLICT)
	}
	if err := h.Platform.Destroy(ctx, id); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if err := h.Platform.Destroy(ctx, id); err != nil {
		t.Errorf("second destroy: %v", err)
	}
	if _, err := h.Platform.State(ctx, id); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("State after destroy: %v; want a %s error", err, kiln.ENOTFOUND)
	}
	// Destroying a running instance directly works too.
	id2 := h.id(t)
	h.launch(ctx, t, id2)
	if err := h.Platform.Destroy(ctx, id2); err != nil {
		t.Fatalf("destroy running: %v", err)
	}
	h.noLeftovers(t)
}

func testCrash(ctx context.Context, t *testing.T, h *Harness) {
	if h.Crash == nil {
		t.Skip("the driver has no way to crash an instance")
	}
	id := h.id(t)
	h.launch(ctx, t, id, kiln.PortForward{Host: "127.0.0.1:0", Guest: ImageHTTPPort})
	h.Crash(t, id)
	deadline := time.Now().Add(15 * time.Second)
	var st kiln.InstanceState
	var err error
	for time.Now().Before(deadline) {
		st, err = h.Platform.State(ctx, id)
		if err == nil && st == kiln.InstanceCrashed {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st != kiln.InstanceCrashed {
		t.Fatalf("after crash: State = %q, %v; want crashed", st, err)
	}
	if err := h.Platform.Destroy(ctx, id); err != nil {
		t.Fatalf("destroy crashed: %v", err)
	}
	h.noLeftovers(t)
}

func testRefusals(ctx context.Context, t *testing.T, h *Harness) {
	if _, err := h.Platform.Exec(ctx, "pt-unknown", []string{"true"}, kiln.ExecIO{}); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("exec in unknown instance: %v; want %s", err, kiln.ENOTFOUND)
	}
	if err := h.Platform.Stop(ctx, "pt-unknown"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("stop unknown instance: %v; want %s", err, kiln.ENOTFOUND)
	}
	if err := h.Platform.Destroy(ctx, "pt-unknown"); err != nil {
		t.Errorf("destroy unknown instance: %v; want nil", err)
	}
	missing := kiln.Artifact{Digest: "sha256:" + strings.Repeat("0", 64)}
	if _, err := h.Platform.Launch(ctx, kiln.LaunchSpec{ID: h.id(t), Name: "pt", Artifact: missing, Timeout: time.Minute}); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("launch of a missing artifact: %v; want %s", err, kiln.ENOTFOUND)
	}
	if _, err := h.Platform.Launch(ctx, kiln.LaunchSpec{ID: h.id(t), Name: "pt", Artifact: h.Image,
		Ports: []kiln.PortForward{{Host: "0.0.0.0:8080", Guest: 80}}}); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("launch forwarding from a non-loopback address: %v; want %s", err, kiln.EINVALID)
	}

	id := h.id(t)
	h.launch(ctx, t, id)
	if _, err := h.Platform.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "pt", Artifact: h.Image, Timeout: time.Minute}); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("second launch with the same id: %v; want %s", err, kiln.ECONFLICT)
	}
	if st, err := h.Platform.State(ctx, id); err != nil || (st != kiln.InstanceRunning && st != kiln.InstanceDegraded) {
		t.Errorf("the first instance after a refused duplicate: %q, %v; want still running", st, err)
	}
	if err := h.Platform.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	h.noLeftovers(t)
}

func testCancelledLaunch(ctx context.Context, t *testing.T, h *Harness) {
	for _, after := range []time.Duration{0, 50 * time.Millisecond, 150 * time.Millisecond} {
		id := h.id(t)
		cctx, cancel := context.WithTimeout(ctx, after)
		_, err := h.Platform.Launch(cctx, kiln.LaunchSpec{ID: id, Name: "pt", Artifact: h.Image, Timeout: time.Minute})
		cancel()
		if err == nil {
			// Fast enough to boot before the deadline: fine, clean up.
			if err := h.Platform.Destroy(ctx, id); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if _, serr := h.Platform.State(ctx, id); kiln.ErrorCode(serr) != kiln.ENOTFOUND {
			t.Errorf("launch cancelled after %s (%v): instance still known (%v); a failed launch must leave nothing", after, err, serr)
		}
	}
	h.noLeftovers(t)
}

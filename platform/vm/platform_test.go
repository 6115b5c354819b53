package vm

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/filedrift"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/kiln-project/kiln/platform/platformtest"
	"github.com/kiln-project/kiln/platform/vm/disk"
)

// TestMain lets the test binary play kiln's hidden roles: the supervisor on
// the host, the agent inside the guest (the disk images the tests boot carry
// this test binary as their kiln binary), and a launcher the tests kill.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__vm-supervise":
			os.Exit(SupervisorMain(os.Args[2:]))
		case disk.AgentCommand:
			os.Exit(AgentMain(os.Args[2:]))
		case filedrift.GuestCommand:
			os.Exit(filedrift.GuestMain(context.Background(), os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "__test-launch":
			os.Exit(testLaunchMain(os.Args[2:]))
		case "__test-get":
			os.Exit(testGetMain(os.Args[2:]))
		}
	}
	code := m.Run()
	if image.path != "" {
		os.RemoveAll(filepath.Dir(image.path))
	}
	os.Exit(code)
}

// need skips (or fails under CI=true) when the machine cannot boot VMs.
func need(t testing.TB) {
	t.Helper()
	ci.Root(t, "the VM platform test")
	for _, tl := range [][2]string{
		{"qemu-system-x86_64", "qemu-system-x86"}, {"qemu-img", "qemu-utils"}, {"mmdebstrap", "mmdebstrap"},
		{"mkfs.ext4", "e2fsprogs"}, {"sfdisk", "fdisk"}, {"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"},
	} {
		ci.Tool(t, tl[0], tl[1])
	}
	if _, err := findFirmware(); err != nil {
		ci.SkipOrFail(t, err.Error())
	}
}

// The disk image the tests boot: built once per test binary (it carries
// this binary as the guest agent), from a rootfs baked once per machine.
var image struct {
	once sync.Once
	path string
	res  *disk.Result
	err  error
}

func testDisk(t testing.TB) (string, *disk.Result) {
	t.Helper()
	need(t)
	image.once.Do(func() {
		ctx := context.Background()
		tar, err := platformtest.BakeVMImage(ctx, filepath.Join(os.TempDir(), "kiln-test-cache")) // testenv.CacheDir; testenv imports this package
		if err != nil {
			image.err = err
			return
		}
		exe, err := os.Executable()
		if err != nil {
			image.err = err
			return
		}
		dir, err := os.MkdirTemp("", "kiln-vm-test-")
		if err != nil {
			image.err = err
			return
		}
		image.path = filepath.Join(dir, "disk.qcow2")
		image.res, image.err = disk.Build(ctx, disk.Spec{Rootfs: tar, Output: image.path, Agent: exe})
	})
	if image.err != nil {
		t.Fatal(image.err)
	}
	return image.path, image.res
}

type env struct {
	p     *Platform
	store *artifact.Store
	art   kiln.Artifact
	dir   string
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	path, _ := testDisk(t)
	dir := t.TempDir()
	store, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
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
	cfg.DataDir, cfg.Artifacts = dir, store
	cfg.Supervisor = []string{exe, "__vm-supervise"}
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: logLevel()}))
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("accelerator: %s", p.Accel())
	return &env{p: p, store: store, art: *art, dir: dir}
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

// leftovers lists processes naming the data directory (QEMU names its
// overlay, the supervisor its instance directory) and overlays of
// instances that no longer exist.
func (e *env) leftovers(t testing.TB) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), e.dir+"/") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if _, ok := instancedir.ProcStart(pid); !ok {
			continue // a zombie being reaped
		}
		out = append(out, "process "+strconv.Itoa(pid)+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	ents, _ := os.ReadDir(filepath.Join(e.p.dataDir, "instances"))
	for _, d := range ents {
		if _, err := readRecord(e.p.instanceDir(d.Name())); err != nil {
			out = append(out, "instance directory without record "+d.Name())
		}
	}
	return out
}

func (e *env) harness() *platformtest.Harness {
	return &platformtest.Harness{
		Platform:  e.p,
		Artifacts: e.store,
		Image:     e.art,
		Crash: func(t testing.TB, id string) {
			rec, err := readRecord(e.p.instanceDir(id))
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Kill(rec.QemuPID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill QEMU %d: %v", rec.QemuPID, err)
			}
		},
		Leftovers: e.leftovers,
		Timeout:   bootTimeout(),
	}
}

// bootTimeout bounds each test boot: KILN_TEST_VM_TIMEOUT, or 5 minutes (a
// TCG boot takes 12–25 s on a quiet machine, minutes on a busy one).
func bootTimeout() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("KILN_TEST_VM_TIMEOUT")); err == nil && d > 0 {
		return d
	}
	return 5 * time.Minute
}

// TestPlatformSuite runs the shared suite: every launch boots a fresh VM
// (the suite's instances must not share state), which under TCG is most of
// this package's test time.
func TestPlatformSuite(t *testing.T) {
	e := newEnv(t, Config{})
	platformtest.Run(t, e.harness())
}

// TestSurvivesLauncher launches a VM from a process that is then killed
// with SIGKILL: the VM keeps running under its supervisor, answers on its
// forwarded port and through the agent, its root has grown to the larger
// disk, and Destroy leaves no QEMU behind. Killing the supervisor takes
// QEMU with it.
func TestSurvivesLauncher(t *testing.T) {
	e := newEnv(t, Config{DiskSize: 3 << 30})
	ctx := context.Background()
	exe, _ := os.Executable()
	id := "killed-launcher"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	// The agent's server on the host's loopback, declared as egress: the
	// guest reaches it at the same address; a port not declared it does not.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "kiln server saw %s %s", r.Method, r.URL.Path)
	}))
	defer srv.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "not declared") }))
	defer other.Close()
	egressAddr := strings.TrimPrefix(srv.URL, "http://")

	cmd := exec.Command(exe, "__test-launch", e.dir, e.art.Digest, id, egressAddr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 256)
	n, _ := out.Read(line)
	host := strings.TrimSpace(string(line[:n]))
	_ = cmd.Process.Kill() // kill -9 of the launching command
	_ = cmd.Wait()
	if !strings.HasPrefix(host, "127.0.0.1:") {
		t.Fatalf("launcher said %q; want the forwarded address", host)
	}

	if st, err := e.p.State(ctx, id); err != nil || (st != kiln.InstanceRunning && st != kiln.InstanceDegraded) {
		t.Fatalf("after the launcher was killed: State = %q, %v; want running", st, err)
	}
	resp, err := http.Get("http://" + host + "/")
	if err != nil {
		t.Fatalf("forwarded port after the launcher was killed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != platformtest.ImageHTTPBody {
		t.Errorf("forwarded port: %q", body)
	}
	var df strings.Builder
	if code, err := e.p.Exec(ctx, id, []string{"df", "-B1", "--output=size", "/"}, kiln.ExecIO{Stdout: &df}); err != nil || code != 0 {
		t.Fatalf("df: %d, %v", code, err)
	}
	f := strings.Fields(df.String())
	size, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	_, res := testDisk(t)
	if size <= res.VirtualSize {
		t.Errorf("root filesystem is %d bytes on a %d-byte disk (image %d): it did not grow at first boot", size, int64(3<<30), res.VirtualSize)
	}
	t.Logf("root filesystem grew to %d bytes (image disk %d)", size, res.VirtualSize)
	var got, gerr strings.Builder
	if code, err := e.p.Exec(ctx, id, []string{disk.AgentPath, "__test-get", srv.URL + "/api/v1/checkins"}, kiln.ExecIO{Stdout: &got, Stderr: &gerr}); err != nil || code != 0 || got.String() != "kiln server saw GET /api/v1/checkins" {
		t.Errorf("egress from the guest to %s: exit %d, %v, %q, stderr %q", srv.URL, code, err, got.String(), gerr.String())
	}
	_, otherPort, _ := net.SplitHostPort(strings.TrimPrefix(other.URL, "http://"))
	for _, u := range []string{other.URL, "http://" + net.JoinHostPort(egressGuestIP, otherPort), "http://10.0.2.2:" + otherPort} {
		got.Reset()
		if code, err := e.p.Exec(ctx, id, []string{disk.AgentPath, "__test-get", u}, kiln.ExecIO{Stdout: &got, Stderr: io.Discard}); err != nil || code == 0 {
			t.Errorf("the guest reached %s, which is not declared egress: exit %d, %v, %q", u, code, err, got.String())
		}
	}
	if b, _ := os.ReadFile(filepath.Join(e.p.instanceDir(id), consoleFile)); !strings.Contains(string(b), "Linux version") {
		t.Errorf("serial console log has no kernel banner (%d bytes)", len(b))
	}
	// The booted VM serves the drift test too (a TCG boot is the
	// expensive part): it changes files, which nothing below reads.
	t.Run("file drift", func(t *testing.T) { testFileDrift(t, e, id) })

	// Killing the supervisor takes QEMU along, and the instance reads as crashed.
	rec, err := readRecord(e.p.instanceDir(id))
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(rec.SupervisorPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for instancedir.Alive(rec.QemuPID, rec.QemuStart) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if instancedir.Alive(rec.QemuPID, rec.QemuStart) {
		t.Errorf("QEMU %d outlived its supervisor", rec.QemuPID)
	}
	if st, _ := e.p.State(ctx, id); st != kiln.InstanceCrashed {
		t.Errorf("after its supervisor was killed: State = %q; want crashed", st)
	}
	if err := e.p.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if l := e.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	if _, err := os.Stat(e.p.instanceDir(id)); !os.IsNotExist(err) {
		t.Errorf("instance directory (and its overlay) still there: %v", err)
	}
}

// testLaunchMain launches an instance, prints its forwarded address and
// waits to be killed.
func testLaunchMain(args []string) int {
	dataDir, digest, id, egress := args[0], args[1], args[2], args[3]
	store, err := artifact.Open(dataDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	exe, _ := os.Executable()
	p, err := New(Config{DataDir: dataDir, Artifacts: store, Supervisor: []string{exe, "__vm-supervise"}, DiskSize: 3 << 30})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	res, err := p.Launch(context.Background(), kiln.LaunchSpec{
		ID: id, Name: "killed-launcher", Artifact: kiln.Artifact{Digest: digest},
		Ports: []kiln.PortForward{{Host: "127.0.0.1:0", Guest: platformtest.ImageHTTPPort}}, Timeout: bootTimeout(),
		Config: &kiln.LaunchConfig{Egress: []string{egress}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(res.Ports[0].Host)
	select {}
}

// testGetMain is an HTTP GET inside the guest (the image's kiln binary is
// this test binary): the body on stdout, exit 1 on any failure.
func testGetMain(args []string) int {
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	_, err = io.Copy(os.Stdout, resp.Body)
	if err != nil || resp.StatusCode != 200 {
		fmt.Fprintln(os.Stderr, resp.Status, err)
		return 1
	}
	return 0
}

// TestLaunchTimeout: a VM that does not finish booting in time fails the
// launch with its serial console's last lines, and is destroyed.
func TestLaunchTimeout(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	_, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: "too-slow", Name: "too-slow", Artifact: e.art, Timeout: 4 * time.Second})
	if err == nil {
		t.Fatal("a 4-second launch timeout: the VM booted; want a timeout")
	}
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "serial console") {
		t.Errorf("launch timeout: %v; want unavailable with the serial console's last lines", err)
	}
	t.Logf("the error: %v", err)
	if _, err := e.p.State(ctx, "too-slow"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("after a timed-out launch: State: %v; want not found", err)
	}
	if l := e.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

func TestAccelChoice(t *testing.T) {
	accel, why, err := chooseAccel(AccelAuto)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("automatic choice: %s (%s)", accel, why)
	if accel == AccelTCG && why == "" {
		t.Error("TCG chosen without saying why KVM is not used")
	}
	if _, _, err := chooseAccel("hvf"); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("accel hvf: %v; want invalid", err)
	}
	if ok, reason := kvmUsable(); !ok {
		if _, _, err := chooseAccel(AccelKVM); kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), reason) {
			t.Errorf("accel kvm where KVM is unusable: %v; want unavailable saying %q", err, reason)
		}
	}
}

func TestNewNamesMissingPackages(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := New(Config{DataDir: t.TempDir(), Artifacts: &artifact.Store{}})
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "qemu-system-x86") {
		t.Errorf("New without QEMU on PATH: %v; want unavailable naming qemu-system-x86", err)
	}
}

// BenchmarkLaunchToExec measures a launch until the guest's systemd has
// finished booting and a command ran through the agent, then the destroy.
func BenchmarkLaunchToExec(b *testing.B) {
	e := newEnv(b, Config{})
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		id := fmt.Sprintf("bench-%d", i)
		if _, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "bench", Artifact: e.art, Timeout: bootTimeout(),
			Ports: []kiln.PortForward{{Host: "127.0.0.1:0", Guest: platformtest.ImageHTTPPort}}}); err != nil {
			b.Fatal(err)
		}
		if code, err := e.p.Exec(ctx, id, []string{"true"}, kiln.ExecIO{}); err != nil || code != 0 {
			b.Fatalf("exec true: %d, %v", code, err)
		}
		b.StopTimer()
		if err := e.p.Destroy(ctx, id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)/1000, "s/launch")
}

// testFileDrift checks drift of a running VM's files: a fresh one shows
// none; a changed file, a file no package owns, a removed one and a
// chmod are reported exactly, as the local platform reports them; a write
// under a volatile path is counted, not reported.
func testFileDrift(t *testing.T, e *env, id string) {
	ctx := context.Background()
	t0 := time.Now()
	files, ignored, err := e.p.FileDrift(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first drift (describes the image, then compares in the guest): %s, %d volatile paths ignored", time.Since(t0).Round(time.Millisecond), ignored)
	if len(files) != 0 {
		t.Errorf("a freshly booted VM shows file drift: %+v", files)
	}
	rec, err := readRecord(e.p.instanceDir(id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(rec.Base + filesSuffix); err != nil {
		t.Errorf("the image's manifest is not cached beside it: %v", err)
	}

	script := `echo changed by hand >> /etc/issue && echo new > /etc/kiln-drift-test.conf && rm /etc/issue.net &&
		chmod 0600 /etc/debian_version && echo noise >> /var/log/kiln-drift-test.log`
	var errb strings.Builder
	if code, err := e.p.Exec(ctx, id, []string{"sh", "-c", script}, kiln.ExecIO{Stderr: &errb}); err != nil || code != 0 {
		t.Fatalf("change the VM: exit %d, %v: %s", code, err, errb.String())
	}
	t0 = time.Now()
	files, ignored2, err := e.p.FileDrift(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("drift with a cached manifest: %s", time.Since(t0).Round(time.Millisecond))
	var got []string
	for _, f := range files {
		got = append(got, string(f.Kind)+" "+f.Path)
	}
	slices.Sort(got)
	want := []string{"added /etc/kiln-drift-test.conf", "changed /etc/debian_version", "changed /etc/issue", "deleted /etc/issue.net"}
	if !slices.Equal(got, want) {
		t.Errorf("drift after the changes:\n got %q\nwant %q", got, want)
	}
	if ignored2 < 1 {
		t.Errorf("%d volatile paths ignored; the write to /var/log should count", ignored2)
	}

	// The guest's comparison alone, and (KILN_TEST_DRIFT_HASH_ALL=1: it
	// takes minutes under TCG) what hashing every file would cost in this
	// guest instead (docs/vm.md "File drift on a VM").
	manifest, err := e.p.imageFiles(ctx, rec.Base)
	if err != nil {
		t.Fatal(err)
	}
	runs := [][]string{{}}
	if os.Getenv("KILN_TEST_DRIFT_HASH_ALL") == "1" {
		runs = append(runs, []string{"--hash-all"})
	}
	for _, args := range runs {
		var out, serr bytes.Buffer
		t0 := time.Now()
		code, err := e.p.Exec(ctx, id, append([]string{disk.AgentPath, filedrift.GuestCommand}, args...), kiln.ExecIO{Stdin: bytes.NewReader(manifest), Stdout: &out, Stderr: &serr})
		el := time.Since(t0)
		res, perr := filedrift.ParseGuest(code, out.Bytes(), serr.Bytes(), disk.AgentPath)
		if err != nil || perr != nil {
			t.Fatalf("guest comparison %v: %v, %v", args, err, perr)
		}
		t.Logf("guest comparison %v (accel %s): %s, %d paths walked, %d files hashed (%d MiB), %d reported", args, e.p.Accel(), el.Round(time.Millisecond), res.Walked, res.Hashed, res.HashedBytes>>20, len(res.Files))
		if len(res.Files) != len(want) {
			t.Errorf("guest comparison %v reports %d paths; want %d", args, len(res.Files), len(want))
		}
	}
}

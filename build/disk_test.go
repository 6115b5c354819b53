package build

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/platform/vm"
	"github.com/kiln-project/kiln/platform/vm/disk"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/verify"
)

// needDiskTools skips (fails under CI=true) without the host tools
// platform/vm/disk uses.
func needDiskTools(t *testing.T) {
	t.Helper()
	for tool, pkg := range map[string]string{"mkfs.ext4": "e2fsprogs", "debugfs": "e2fsprogs", "sfdisk": "fdisk",
		"mkfs.vfat": "dosfstools", "mcopy": "mtools", "qemu-img": "qemu-utils"} {
		if _, err := exec.LookPath(tool); err != nil {
			ci.SkipOrFail(t, "disk images need "+tool+" (apt-get install "+pkg+")")
		}
	}
}

// exampleEstate copies the example estate into dir and edits basic-linux
// with edit (the repository's examples stay as they are).
func exampleEstate(t *testing.T, dir string, edit func(string) string) *definition.Estate {
	t.Helper()
	src := filepath.Join("..", "examples", "estate")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "basic-linux.kiln.hcl")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(edit(string(b))), 0o644); err != nil {
		t.Fatal(err)
	}
	est, diags := definition.Load(dir, definition.Options{Vars: map[string]string{"mirror": mirror()}})
	if diags.HasErrors() {
		t.Fatalf("load estate: %s", definition.FormatDiagnostics(diags))
	}
	return est
}

// TestDiskImageBuild builds the example basic-linux with a kernel and
// formats = ["rootfs", "qcow2"] through the real builder: the qcow2 is
// kept in the artifact store, recorded with the version, covered by its
// signature (re-hashed), the same rootfs gives the same qcow2 bytes, and a
// rebuild from the step cache has its disk image too.
func TestDiskImageBuild(t *testing.T) {
	b := needBuilder(t)
	needDiskTools(t)
	ctx := context.Background()
	// A registry of its own that signs versions as they are recorded.
	reg, err := store.Open(ctx, "", t.TempDir(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewSigner(key)
	reg.SealVersionsWith(signer.Seal)
	b.Registry = reg
	// The image's kiln binary is this test binary (TestMain plays the
	// guest agent and the server-test probe), as a real build installs
	// the kiln that built it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b.AgentBinary = exe

	estDir := t.TempDir()
	est := exampleEstate(t, estDir, func(s string) string {
		s = strings.Replace(s, `packages = ["systemd-sysv", "ca-certificates"]`,
			`packages = ["systemd-sysv", "ca-certificates", "linux-image-amd64"]
  formats  = ["rootfs", "qcow2"]`, 1)
		if !strings.Contains(s, "linux-image-amd64") {
			t.Fatal("the example basic-linux changed; adjust the edit")
		}
		return s
	})
	var progress bytes.Buffer
	res, err := b.Build(ctx, est, est.Images["basic-linux"], Options{Progress: io.MultiWriter(&progress, testWriter{t})})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, res.Log)
	}
	v := res.Version
	if len(v.Provenance.Artifacts) != 1 {
		t.Fatalf("artifacts = %+v, want one qcow2", v.Provenance.Artifacts)
	}
	q := v.Provenance.Artifacts[0]
	if q.Format != kiln.FormatQCOW2 || kiln.ValidateDigest("digest", q.Digest) != nil || q.Size == 0 || q.Digest == v.Provenance.Artifact.Digest {
		t.Fatalf("qcow2 artifact = %+v", q)
	}
	if !strings.Contains(progress.String(), "disk image qcow2") {
		t.Errorf("progress has no disk image step:\n%s", progress.String())
	}
	last := res.Steps[len(res.Steps)-1]
	var rootfsTime time.Duration
	for _, s := range res.Steps[:len(res.Steps)-1] {
		rootfsTime += s.Elapsed
	}
	t.Logf("MEASURE rootfs bake %s, qcow2 disk step %s (%.2f×), rootfs %d bytes, qcow2 %d bytes",
		rootfsTime.Round(100*time.Millisecond), last.Elapsed.Round(100*time.Millisecond), float64(last.Elapsed)/float64(rootfsTime), v.Provenance.Artifact.Size, q.Size)

	// Recorded: read back from the registry with its format.
	got, err := reg.FindVersion(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if a, err := got.Artifact(kiln.FormatQCOW2); err != nil || !reflect.DeepEqual(*a, q) {
		t.Fatalf("registry's qcow2 = %+v, %v; want %+v", a, err, q)
	}
	// Signed: the envelope verifies with the qcow2 re-hashed from the store,
	// and its statement names the qcow2 as a subject.
	if err := sign.CheckVersion(ctx, reg, b.Artifacts, []crypto.PublicKey{signer.Public()}, got, true); err != nil {
		t.Fatalf("check signature: %v", err)
	}
	st, err := sign.NewStatement(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Subject) != 2 || st.Subject[1].Name != v.Name+".qcow2" || "sha256:"+st.Subject[1].Digest["sha256"] != q.Digest {
		t.Errorf("statement subjects = %+v", st.Subject)
	}
	// A qcow2 in the store: QEMU's magic.
	rc, err := b.Artifacts.Open(ctx, q.Digest)
	if err != nil {
		t.Fatal(err)
	}
	magic := make([]byte, 4)
	_, err = io.ReadFull(rc, magic)
	rc.Close()
	if err != nil || string(magic) != "QFI\xfb" {
		t.Errorf("stored qcow2 starts with %q (%v)", magic, err)
	}

	// Bootable: the qcow2 as stored boots under QEMU (firmware, boot
	// loader, kernel and initramfs from the image) and passes the image's
	// server tests over virtio-serial.
	bootAndTest(t, b, v.Name, q, est.Images["basic-linux"].TestPaths)

	// Reproducible: the disk built again from the same stored rootfs is
	// the same bytes.
	work := t.TempDir()
	rootfs := rootfsTree(t, b, v.Provenance.Artifact, filepath.Join(work, "root"))
	again, err := disk.Build(ctx, disk.Spec{Rootfs: rootfs, Seed: v.Provenance.Artifact.Digest, Output: filepath.Join(work, "again.qcow2"), Format: disk.QCOW2})
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != q.Digest {
		t.Errorf("the same rootfs gave qcow2 %s, then %s", q.Digest, again.Digest)
	}

	// A rebuild from the step cache (forced: the inputs are the same)
	// still makes and records its disk image.
	res2, err := b.Build(ctx, est, est.Images["basic-linux"], Options{Force: true, Progress: testWriter{t}})
	if err != nil {
		t.Fatalf("rebuild: %v\n%s", err, res2.Log)
	}
	if !res2.Steps[0].Cached {
		t.Errorf("rebuild did not use the step cache: %+v", res2.Steps)
	}
	v2 := res2.Version
	if len(v2.Provenance.Artifacts) != 1 || v2.Provenance.Artifacts[0].Format != kiln.FormatQCOW2 {
		t.Fatalf("rebuild's artifacts = %+v", v2.Provenance.Artifacts)
	}
	if _, err := b.Artifacts.Stat(ctx, v2.Provenance.Artifacts[0].Digest); err != nil {
		t.Errorf("rebuild's qcow2 is not in the store: %v", err)
	}
	if _, err := b.Artifacts.Stat(ctx, q.Digest); err != nil {
		t.Errorf("the first version's qcow2 went from the store: %v", err)
	}
}

// bootAndTest launches the stored disk image q on the VM platform, as the
// test stage does (UEFI firmware, the image's systemd-boot, kernel and
// initramfs; TCG where KVM is unusable), runs the image's server tests in it
// through the image's own kiln, destroys it, and checks that no QEMU,
// supervisor, overlay or network namespace is left behind.
func bootAndTest(t *testing.T, b *Builder, name string, q kiln.Artifact, tests []string) {
	t.Helper()
	for tool, pkg := range map[string]string{"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils"} {
		if _, err := exec.LookPath(tool); err != nil {
			ci.SkipOrFail(t, "booting the disk image needs "+tool+" (apt-get install "+pkg+")")
		}
	}
	ctx := context.Background()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	// Through the UEFI firmware and the disk's own boot loader, as a
	// hypervisor or a cloud boots it (not the VM platform's direct boot).
	p, err := vm.New(vm.Config{DataDir: dataDir, Artifacts: b.Artifacts, Supervisor: []string{exe, "__vm-supervise"}, Boot: vm.BootFirmware,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		if kiln.ErrorCode(err) == kiln.EUNAVAILABLE {
			ci.SkipOrFail(t, err.Error())
		}
		t.Fatal(err)
	}
	id := "disk-test-" + name
	t.Cleanup(func() { _ = p.Destroy(context.Background(), id) })
	timeout := 10 * time.Minute // TCG on a busy machine; a quiet one boots in well under a minute
	if d, err := time.ParseDuration(os.Getenv("KILN_TEST_VM_TIMEOUT")); err == nil && d > 0 {
		timeout = d
	}
	start := time.Now()
	res, err := p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: name, Artifact: q, Timeout: timeout})
	if err != nil {
		t.Fatalf("boot %s (%s) under %s: %v", name, q.Format, p.Accel(), err)
	}
	if len(tests) == 0 {
		t.Fatal("basic-linux has no server tests")
	}
	for _, path := range tests {
		suite, err := verify.ParseFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := verify.Run(ctx, verify.InstanceExecutor{Platform: p, ID: id}, suite)
		if err != nil {
			t.Fatalf("server tests %s on the VM: %v", path, err)
		}
		if !rep.Passed() {
			var out bytes.Buffer
			_ = (verify.Text{}).Write(&out, rep)
			t.Fatalf("server tests %s failed on the VM:\n%s", path, out.String())
		}
		t.Logf("server tests %s: %d checks passed on the VM", filepath.Base(path), suite.Count())
	}
	t.Logf("MEASURE %s booted under %s (%s) and passed its server tests in %s", name, p.Accel(), res.State, time.Since(start).Round(100*time.Millisecond))
	if err := p.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if left := processesUnder(dataDir); len(left) > 0 {
		t.Errorf("left behind after destroy: %v", left)
	}
	if ents, _ := os.ReadDir(filepath.Join(dataDir, "vm", "instances")); len(ents) > 0 {
		t.Errorf("instance directories (overlays) left behind: %v", ents)
	}
	// The VM platform makes no network namespace (QEMU's user network
	// lives in its process), so there is none to check here: comparing
	// the machine's namespaces would only see other packages' tests,
	// which run beside this one.
}

// processesUnder lists live processes whose command line names dir (QEMU
// names its overlay, the supervisor its instance directory).
func processesUnder(dir string) []string {
	var out []string
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(b), dir+"/") {
			continue
		}
		if st, err := os.ReadFile(filepath.Join(filepath.Dir(p), "stat")); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie being reaped
		}
		out = append(out, filepath.Base(filepath.Dir(p))+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}

// rootfsTree applies artifact a's layers (or its one tar) into dir, as
// the build hands the disk builder a layered root filesystem.
func rootfsTree(t *testing.T, b *Builder, a *kiln.Artifact, dir string) string {
	t.Helper()
	ctx := context.Background()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ls, err := layer.Layers(ctx, b.Artifacts, a)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := layer.Open(ctx, b.Artifacts, l)
		if err != nil {
			t.Fatal(err)
		}
		err = layer.ExtractTar(ctx, rc, dir, layer.ExtractOptions{Apply: true})
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

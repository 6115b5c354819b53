package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/platform/vm/vmtest"
)

// need skips (or fails under CI=true) without what building disks needs.
func need(t testing.TB) {
	t.Helper()
	ci.Root(t, "building a disk image from a rootfs tarball")
	for _, tl := range []tool{toolMkfsExt4, toolDebugfs, toolSfdisk, toolMkfsVfat, toolMcopy, toolQemuImg, toolTar} {
		ci.Tool(t, tl.name, tl.pkg)
	}
	ci.Tool(t, "mmdebstrap", "mmdebstrap")
	if _, _, err := findBootLoader("/nonexistent"); err != nil {
		ci.SkipOrFail(t, "systemd-boot is not installed (apt-get install systemd-boot-efi)")
	}
}

var rootfs struct {
	once sync.Once
	path string
	err  error
}

func testRootfs(t testing.TB) string {
	t.Helper()
	need(t)
	rootfs.once.Do(func() { rootfs.path, rootfs.err = vmtest.BakeRootfs(context.Background(), testenv.CacheDir()) })
	if rootfs.err != nil {
		t.Fatal(rootfs.err)
	}
	return rootfs.path
}

// agentBinary is any executable standing in for the kiln binary.
func agentBinary(t testing.TB) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

func TestBuildReproducibleAndBootable(t *testing.T) {
	tar := testRootfs(t)
	dir := t.TempDir()
	var results []*Result
	for i, f := range []Format{QCOW2, QCOW2, Raw} {
		start := time.Now()
		res, err := Build(context.Background(), Spec{Rootfs: tar, Output: filepath.Join(dir, "disk"+string(rune('a'+i))), Format: f, Agent: agentBinary(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes (virtual %d) in %s, kernel %s, boot loader from %s", f, res.Size, res.VirtualSize, time.Since(start).Round(time.Millisecond), res.Kernel, res.BootLoader)
		results = append(results, res)
	}
	if results[0].Digest != results[1].Digest {
		t.Errorf("two builds of the same inputs differ: %s and %s", results[0].Digest, results[1].Digest)
	}

	raw := results[2].Path
	out, err := exec.Command("sfdisk", "--dump", raw).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v: %s", err, out)
	}
	for _, want := range []string{"label: gpt", "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", strings.ToUpper(results[2].DiskGUID)} {
		if !strings.Contains(string(out), want) {
			t.Errorf("partition table lacks %q:\n%s", want, out)
		}
	}
	// The EFI partition starts at 1 MiB: read the boot loader's entry.
	entry, err := exec.Command("mtype", "-i", raw+"@@1M", "::/loader/entries/kiln.conf").CombinedOutput()
	if err != nil {
		t.Fatalf("mtype: %v: %s", err, entry)
	}
	for _, want := range []string{"root=UUID=", "console=ttyS0", "linux /vmlinuz", "initrd /initrd.img"} {
		if !strings.Contains(string(entry), want) {
			t.Errorf("loader entry lacks %q:\n%s", want, entry)
		}
	}
	if out, err := exec.Command("mdir", "-i", raw+"@@1M", "::/EFI/BOOT/BOOTX64.EFI").CombinedOutput(); err != nil {
		t.Errorf("no EFI/BOOT/BOOTX64.EFI: %v: %s", err, out)
	}
}

func TestBuildRefusesImageWithoutKernel(t *testing.T) {
	if err := lookTools(toolMkfsExt4, toolDebugfs, toolSfdisk, toolMkfsVfat, toolMcopy); err != nil {
		ci.SkipOrFail(t, err.Error())
	}
	root := t.TempDir()
	for _, d := range []string{"etc", "boot", "usr/local/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Build(context.Background(), Spec{Rootfs: root, Seed: "sha256:x", Output: filepath.Join(t.TempDir(), "d"), Format: Raw})
	if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Fatalf("building a disk from a tree without a kernel: %v; want an invalid error naming linux-image-amd64", err)
	}
}

func TestBuildRefusesBadSpec(t *testing.T) {
	if _, err := Build(context.Background(), Spec{Rootfs: "x", Output: "y", Format: "vmdk"}); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("format vmdk: %v; want invalid", err)
	}
	if _, err := Build(context.Background(), Spec{}); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("empty spec: %v; want invalid", err)
	}
}

func TestVersionLess(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"6.1.0-9-amd64", "6.1.0-28-amd64", true},
		{"6.1.0-28-amd64", "6.1.0-9-amd64", false},
		{"5.10.0-30-amd64", "6.1.0-1-amd64", true},
	} {
		if got := versionLess(c.a, c.b); got != c.want {
			t.Errorf("versionLess(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestLookToolsNamesPackages(t *testing.T) {
	err := lookTools(tool{"kiln-no-such-tool", "kiln-pkg"}, tool{"kiln-no-such-tool2", "kiln-pkg"})
	if err == nil || !strings.Contains(err.Error(), "apt-get install kiln-pkg") || strings.Count(err.Error(), "kiln-pkg") != 1 {
		t.Fatalf("lookTools: %v", err)
	}
}

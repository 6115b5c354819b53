package disk

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/platform/platformtest"
	"golang.org/x/sys/unix"
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
	// testenv.CacheDir (testenv imports this package, so not from here)
	cache := filepath.Join(os.TempDir(), "kiln-test-cache")
	rootfs.once.Do(func() { rootfs.path, rootfs.err = platformtest.BakeVMImage(context.Background(), cache) })
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

// fakeTree writes a small tree with what Build looks for (a kernel, an
// initramfs, the kiln binary), a hard link and a symlink, all dated epoch;
// the inodes' change times are whenever it runs.
func fakeTree(t *testing.T, dir string, epoch time.Time) {
	t.Helper()
	files := map[string]string{
		"boot/vmlinuz-6.1.0-9-amd64":    "kernel",
		"boot/initrd.img-6.1.0-9-amd64": "initramfs",
		"usr/local/bin/kiln":            "kiln",
		"etc/fstab":                     "# UNCONFIGURED FSTAB\n",
		"var/lib/data":                  strings.Repeat("data\n", 1000),
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(dir, "var/lib/data"), filepath.Join(dir, "var/lib/data.link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../lib/data", filepath.Join(dir, "var/lib/sym")); err != nil {
		t.Fatal(err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(epoch.UnixNano()), unix.NsecToTimespec(epoch.UnixNano())}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		// As tar does on extraction: symlinks' own times too.
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestBuildReproducible builds two copies of a tree, made a second apart
// (so every inode's change time differs), and wants the same bytes.
func TestBuildReproducible(t *testing.T) {
	if err := lookTools(toolMkfsExt4, toolDebugfs, toolDumpe2fs, toolE2fsck, toolSfdisk, toolMkfsVfat, toolMmd, toolMcopy, toolQemuImg); err != nil {
		ci.SkipOrFail(t, err.Error())
	}
	if _, _, err := findBootLoader("/nonexistent"); err != nil {
		ci.SkipOrFail(t, err.Error())
	}
	epoch := time.Unix(1700000000, 0)
	var digests []string
	for i := range 2 {
		if i > 0 {
			time.Sleep(1100 * time.Millisecond)
		}
		root := filepath.Join(t.TempDir(), "root")
		fakeTree(t, root, epoch)
		res, err := Build(context.Background(), Spec{Rootfs: root, Seed: "sha256:seed", Output: filepath.Join(t.TempDir(), "disk.qcow2"), SourceDateEpoch: epoch.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, res.Digest)
	}
	if digests[0] != digests[1] {
		t.Fatalf("two builds of the same tree differ: %s and %s", digests[0], digests[1])
	}
	// Another seed gives other identifiers, so other bytes.
	root := filepath.Join(t.TempDir(), "root")
	fakeTree(t, root, epoch)
	res, err := Build(context.Background(), Spec{Rootfs: root, Seed: "sha256:other", Output: filepath.Join(t.TempDir(), "disk.qcow2"), SourceDateEpoch: epoch.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Digest == digests[0] {
		t.Error("a different seed gave the same disk")
	}
}

// TestBuildDebian builds a raw disk from a real Debian tree with a kernel
// and checks its partition table, boot loader entry and root filesystem.
// (platform/vm's tests boot the same kind of disk.)
func TestBuildDebian(t *testing.T) {
	tar := testRootfs(t)
	start := time.Now()
	res, err := Build(context.Background(), Spec{Rootfs: tar, Output: filepath.Join(t.TempDir(), "disk.raw"), Format: Raw, Agent: agentBinary(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("raw: %d bytes in %s, kernel %s, boot loader from %s", res.Size, time.Since(start).Round(time.Millisecond), res.Kernel, res.BootLoader)
	raw := res.Path
	out, err := exec.Command("sfdisk", "--dump", raw).CombinedOutput()
	if err != nil {
		t.Fatalf("sfdisk --dump: %v: %s", err, out)
	}
	for _, want := range []string{"label: gpt", "type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", strings.ToUpper(res.DiskGUID)} {
		if !strings.Contains(string(out), want) {
			t.Errorf("partition table lacks %q:\n%s", want, out)
		}
	}
	// The EFI partition starts at 1 MiB.
	entry, err := exec.Command("mtype", "-i", raw+"@@1M", "::/loader/entries/kiln.conf").CombinedOutput()
	if err != nil {
		t.Fatalf("mtype: %v: %s", err, entry)
	}
	for _, want := range []string{"root=UUID=" + res.RootUUID, "console=ttyS0", "linux /vmlinuz", "initrd /initrd.img"} {
		if !strings.Contains(string(entry), want) {
			t.Errorf("loader entry lacks %q:\n%s", want, entry)
		}
	}
	if out, err := exec.Command("mdir", "-i", raw+"@@1M", "::/EFI/BOOT/BOOTX64.EFI").CombinedOutput(); err != nil {
		t.Errorf("no EFI/BOOT/BOOTX64.EFI: %v: %s", err, out)
	}
	// The root filesystem: the UUID the loader entry names, fstab by that
	// UUID, the guest agent enabled.
	m := regexp.MustCompile(`start=\s*(\d+),.*name="root"`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no root partition in:\n%s", out)
	}
	sector, _ := strconv.ParseInt(string(m[1]), 10, 64)
	off := strconv.FormatInt(sector*512, 10)
	if blk, err := exec.Command("blkid", "-p", "-O", off, raw).CombinedOutput(); err != nil || !strings.Contains(string(blk), `UUID="`+res.RootUUID+`"`) || !strings.Contains(string(blk), `TYPE="ext4"`) {
		t.Errorf("root partition: blkid says %s (%v); want ext4 with UUID %s", blk, err, res.RootUUID)
	}
	for cmd, want := range map[string]string{
		"cat /etc/fstab":                                 "UUID=" + res.RootUUID + " / ext4 defaults,x-systemd.growfs",
		"cat /etc/repart.d/50-kiln-root.conf":            "Type=root",
		"ls -l /etc/systemd/system/sysinit.target.wants": AgentUnitName,
		"cat /etc/systemd/network/80-kiln-dhcp.network":  "DHCP=ipv4",
		"stat " + AgentPath:                              "Mode:  0755",
	} {
		got, err := exec.Command("debugfs", "-R", cmd, raw+"?offset="+off).CombinedOutput()
		if err != nil || !strings.Contains(string(got), want) {
			t.Errorf("debugfs %s: %s (%v); want %q", cmd, got, err, want)
		}
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

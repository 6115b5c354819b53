package disk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Format is a disk image's file format.
type Format string

// The formats Build writes.
const (
	Raw   Format = "raw"
	QCOW2 Format = "qcow2"
)

// What the guest side of the VM platform finds in every disk image.
const (
	// AgentPath is where the kiln binary lives in the image.
	AgentPath = "/usr/local/bin/kiln"
	// AgentPort is the name of the virtio-serial port the agent serves
	// (QEMU: -device virtserialport,name=AgentPort).
	AgentPort = "org.kiln.agent.0"
	// AgentCommand is the hidden kiln command the agent's unit runs.
	AgentCommand = "__vm-agent"
	// AgentUnitName is the agent's systemd unit in the image.
	AgentUnitName = "kiln-vm-agent.service"
)

// AgentUnit is the systemd unit that runs the guest agent. It starts early
// (server tests may run while the boot finishes) and does nothing on a
// machine without kiln's virtio-serial port, such as a cloud.
const AgentUnit = `[Unit]
Description=kiln guest agent on virtio-serial port ` + AgentPort + `
DefaultDependencies=no
Conflicts=shutdown.target
Before=shutdown.target
ConditionPathExists=` + AgentPath + `

[Service]
ExecStart=` + AgentPath + ` ` + AgentCommand + `
Restart=on-failure
RestartSec=1

[Install]
WantedBy=sysinit.target
`

// Spec says what to build.
type Spec struct {
	// Rootfs is the image's root filesystem: a directory (read, never
	// written) or a tarball as kiln's rootfs artifacts are (unpacking one
	// needs root, to keep file owners).
	Rootfs string
	// Seed derives the disk's UUIDs and hash seeds; the input's digest. It
	// may be empty for a tarball, whose sha256 is then used.
	Seed string
	// Output is the file to write; it is replaced only when complete.
	Output string
	// Format is Raw or QCOW2 (the default).
	Format Format
	// Agent, when set, is a kiln binary on the host installed at AgentPath;
	// otherwise the image's own is used.
	Agent string
	// Compress writes qcow2 clusters zlib-compressed (qemu-img convert -c):
	// smaller to ship and import, slower to write and to boot from.
	Compress bool
	// FreeMiB is free space left in the root filesystem (before it grows at
	// first boot); zero means 256.
	FreeMiB int
	// SourceDateEpoch stamps every time kiln sets; zero means
	// SOURCE_DATE_EPOCH from the environment, or 1700000000.
	SourceDateEpoch int64
	// TempDir holds the work files; empty means the output's directory.
	TempDir string
}

// Result describes the disk written.
type Result struct {
	Path        string `json:"path"`
	Format      Format `json:"format"`
	Digest      string `json:"digest"`
	Size        int64  `json:"size"`
	VirtualSize int64  `json:"virtual_size"`
	Kernel      string `json:"kernel"` // the kernel version booted, e.g. 6.1.0-28-amd64
	DiskGUID    string `json:"disk_guid"`
	RootUUID    string `json:"root_uuid"` // the root filesystem's (fstab, root=UUID=)
	// BootLoader is where systemd-boot came from: "image" or the host path.
	BootLoader string `json:"boot_loader"`
}

// Build writes the disk image spec describes.
func Build(ctx context.Context, spec Spec) (res *Result, err error) {
	if spec.Rootfs == "" || spec.Output == "" {
		return nil, kiln.Errorf(kiln.EINVALID, "disk image: a root filesystem and an output file are needed")
	}
	if spec.Format == "" {
		spec.Format = QCOW2
	}
	if spec.Format != Raw && spec.Format != QCOW2 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "format", "disk format %q is not raw or qcow2", spec.Format)
	}
	if spec.FreeMiB <= 0 {
		spec.FreeMiB = 256
	}
	if spec.SourceDateEpoch == 0 {
		spec.SourceDateEpoch = envEpoch()
	}
	need := []tool{toolMkfsExt4, toolDebugfs, toolDumpe2fs, toolE2fsck, toolSfdisk, toolMkfsVfat, toolMmd, toolMcopy}
	if spec.Format == QCOW2 {
		need = append(need, toolQemuImg)
	}
	fi, err := os.Stat(spec.Rootfs)
	if err != nil {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "disk image: root filesystem %s: %v", spec.Rootfs, err)
	}
	if !fi.IsDir() {
		need = append(need, toolTar)
	}
	if err := lookTools(need...); err != nil {
		return nil, err
	}
	if spec.Agent != "" {
		if afi, err := os.Stat(spec.Agent); err != nil || !afi.Mode().IsRegular() {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "agent", "kiln binary %q is not a file (%v)", spec.Agent, err)
		}
	}

	tmpParent := spec.TempDir
	if tmpParent == "" {
		tmpParent = filepath.Dir(spec.Output)
	}
	work, err := os.MkdirTemp(tmpParent, ".kiln-disk-")
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	defer os.RemoveAll(work)

	root := spec.Rootfs
	if !fi.IsDir() {
		if spec.Seed == "" {
			if spec.Seed, err = fileDigest(spec.Rootfs); err != nil {
				return nil, fmt.Errorf("disk image: %w", err)
			}
		}
		root = filepath.Join(work, "root")
		if err := unpack(ctx, spec.Rootfs, root); err != nil {
			return nil, err
		}
	}
	if spec.Seed == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "seed", "a disk image from a directory needs a seed (the input's digest) for its UUIDs")
	}

	kernel, err := findKernel(root)
	if err != nil {
		return nil, err
	}
	loader, loaderFrom, err := findBootLoader(root)
	if err != nil {
		return nil, err
	}
	if spec.Agent == "" {
		if _, err := os.Lstat(filepath.Join(root, AgentPath)); err != nil {
			return nil, kiln.Errorf(kiln.EINVALID, "disk image: the image has no kiln binary at %s (the VM platform runs commands through it); build the image with kiln, or pass the kiln binary to install", AgentPath)
		}
	}

	ids := deriveIDs(spec.Seed)
	epoch := time.Unix(spec.SourceDateEpoch, 0).UTC()
	// No rootdelay=: initramfs-tools sleeps that long unconditionally.
	// no_timer_check: a virtual CPU that the host does not schedule in
	// time (emulation on a busy machine) fails the kernel's IO-APIC timer
	// check, which then panics ("IO-APIC + timer doesn't work!"); the
	// check finds nothing on hardware that boots at all.
	cmdline := fmt.Sprintf("root=UUID=%s rootfstype=ext4 rw console=tty0 console=ttyS0,115200 panic=10 no_timer_check", ids.rootFS)

	rootImg := filepath.Join(work, "root.ext4")
	if err := buildRoot(ctx, root, rootImg, ids, epoch, spec, networkConfigured(root)); err != nil {
		return nil, err
	}
	espImg := filepath.Join(work, "esp.fat")
	if err := buildESP(ctx, work, espImg, root, kernel, loader, cmdline, ids, epoch); err != nil {
		return nil, err
	}
	raw := filepath.Join(work, "disk.raw")
	vsize, err := assemble(ctx, raw, espImg, rootImg, ids)
	if err != nil {
		return nil, err
	}
	out := raw
	if spec.Format == QCOW2 {
		out = filepath.Join(work, "disk.qcow2")
		args := []string{"convert", "-f", "raw", "-O", "qcow2"}
		if spec.Compress {
			args = append(args, "-c")
		}
		if err := run(ctx, nil, toolQemuImg, append(args, raw, out)...); err != nil {
			return nil, err
		}
	}
	if err := os.Chtimes(out, epoch, epoch); err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	digest, err := fileDigest(out)
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	ofi, err := os.Stat(out)
	if err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	if err := os.Rename(out, spec.Output); err != nil {
		return nil, fmt.Errorf("disk image: %w", err)
	}
	return &Result{
		Path: spec.Output, Format: spec.Format, Digest: digest, Size: ofi.Size(), VirtualSize: vsize,
		Kernel: kernel.version, DiskGUID: ids.disk, RootUUID: ids.rootFS, BootLoader: loaderFrom,
	}, nil
}

func envEpoch() int64 {
	var n int64
	if _, err := fmt.Sscan(os.Getenv("SOURCE_DATE_EPOCH"), &n); err == nil && n > 0 {
		return n
	}
	return 1700000000
}

// unpack extracts a rootfs tarball with GNU tar as platform/local does:
// owners, modes, xattrs and hard links exactly as the image has them.
func unpack(ctx context.Context, tarball, dir string) error {
	if os.Geteuid() != 0 {
		return kiln.Errorf(kiln.EUNAVAILABLE, "disk image: unpacking %s keeps its files' owners and needs root; run as root or pass an unpacked tree", tarball)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	return run(ctx, nil, toolTar, "--extract", "--file="+tarball, "--directory="+dir,
		"--numeric-owner", "--same-permissions", "--same-owner", "--xattrs", "--xattrs-include=*")
}

type kernelFiles struct {
	version         string
	vmlinuz, initrd string // paths relative to the root
}

// findKernel picks the image's newest kernel and its initramfs under /boot.
func findKernel(root string) (*kernelFiles, error) {
	ks, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	if len(ks) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "packages", "the image has no kernel (/boot/vmlinuz-*); a disk image boots the image's own kernel: add linux-image-amd64 to the image's packages")
	}
	versions := make([]string, 0, len(ks))
	for _, k := range ks {
		versions = append(versions, strings.TrimPrefix(filepath.Base(k), "vmlinuz-"))
	}
	sort.Slice(versions, func(i, j int) bool { return versionLess(versions[i], versions[j]) })
	v := versions[len(versions)-1]
	k := &kernelFiles{version: v, vmlinuz: "boot/vmlinuz-" + v, initrd: "boot/initrd.img-" + v}
	if _, err := os.Stat(filepath.Join(root, k.initrd)); err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "packages", "the image has kernel %s but no initramfs (/%s); install initramfs-tools in the image (linux-image-amd64 pulls it in)", v, k.initrd)
	}
	return k, nil
}

// versionLess orders kernel versions by their numeric runs ("6.1.0-28" after
// "6.1.0-9").
func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' || r == '+' || r == '~' })
	}
	pa, pb := split(a), split(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		var na, nb int
		_, ea := fmt.Sscan(pa[i], &na)
		_, eb := fmt.Sscan(pb[i], &nb)
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}

const loaderInImage = "usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// findBootLoader takes systemd-boot from the image (package
// systemd-boot-efi) or else from the host.
func findBootLoader(root string) (path, from string, err error) {
	if p := filepath.Join(root, loaderInImage); regular(p) {
		return p, "image", nil
	}
	for _, p := range []string{"/usr/lib/systemd/boot/efi/systemd-bootx64.efi", "/lib/systemd/boot/efi/systemd-bootx64.efi"} {
		if regular(p) {
			return p, p, nil
		}
	}
	return "", "", kiln.Errorf(kiln.EUNAVAILABLE, "disk image: no systemd-boot EFI binary in the image nor on this machine; install systemd-boot-efi (apt-get install systemd-boot-efi)")
}

func regular(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// networkConfigured reports whether the image configures its network
// itself (systemd-networkd, ifupdown, NetworkManager or netplan).
func networkConfigured(root string) bool {
	for _, g := range []string{"etc/systemd/network/*.network", "lib/systemd/network/*.network.d", "etc/netplan/*.yaml", "etc/NetworkManager/system-connections/*"} {
		if m, _ := filepath.Glob(filepath.Join(root, g)); len(m) > 0 {
			return true
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/network/interfaces"))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) >= 2 && (f[0] == "iface" || f[0] == "auto" || f[0] == "allow-hotplug") && f[1] != "lo" {
				return true
			}
		}
	}
	return false
}

type diskIDs struct {
	disk, esp, root string // GPT GUIDs and the ext4 UUID (same as root partition's)
	rootFS          string // ext4 filesystem UUID
	hashSeed        string
	volID           string // FAT volume id, 8 hex digits
}

// deriveIDs makes the disk's identifiers from the seed: RFC 4122 version 4
// shapes, but reproducible.
func deriveIDs(seed string) diskIDs {
	u := func(purpose string) string {
		h := sha256.Sum256([]byte("kiln-disk\x00" + purpose + "\x00" + seed))
		b := h[:16]
		b[6] = b[6]&0x0f | 0x40
		b[8] = b[8]&0x3f | 0x80
		x := hex.EncodeToString(b)
		return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
	}
	vh := sha256.Sum256([]byte("kiln-disk\x00fat\x00" + seed))
	return diskIDs{
		disk: u("disk"), esp: u("esp"), root: u("root-part"),
		rootFS: u("root-fs"), hashSeed: u("hash-seed"),
		volID: hex.EncodeToString(vh[:4]),
	}
}

func fileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// treeUsage sums what the tree needs on ext4 with 4 KiB blocks, and counts
// its inodes. Hard links count once.
func treeUsage(root string) (bytes int64, inodes int64, err error) {
	seen := map[uint64]bool{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if ino := inodeOf(fi); ino != 0 && !fi.IsDir() {
			if seen[ino] {
				return nil
			}
			seen[ino] = true
		}
		inodes++
		bytes += (fi.Size() + 4095) / 4096 * 4096
		if fi.IsDir() {
			bytes += 4096
		}
		return nil
	})
	return bytes, inodes, err
}

// run runs a tool, with its output in the error when it fails.
func run(ctx context.Context, env []string, t tool, args ...string) error {
	_, err := output(ctx, env, t, args...)
	return err
}

func output(ctx context.Context, env []string, t tool, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, t.name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("disk image: %s: %w", t.name, ctx.Err())
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 2000 {
			msg = msg[len(msg)-2000:]
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("disk image: %s %s: %w: %s", t.name, strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("disk image: %s: %w", t.name, err)
	}
	return out, nil
}

package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/kiln-project/kiln"
)

// How a VM boots.
const (
	// BootAuto is BootDirect under TCG, where the UEFI firmware alone
	// takes a large part of the boot, and BootFirmware under KVM.
	BootAuto = ""
	// BootFirmware boots the disk as a hypervisor or cloud does: OVMF
	// (UEFI) finds systemd-boot on the disk's EFI system partition, which
	// loads the kernel and initramfs with the entry's command line.
	BootFirmware = "firmware"
	// BootDirect has QEMU load the same kernel, initramfs and command line,
	// read from the disk's EFI system partition once per image, without
	// firmware or boot loader (QEMU's own BIOS and its Linux loader).
	BootDirect = "direct"
)

// directBoot is what a direct boot hands QEMU, taken from the image.
type directBoot struct {
	Kernel  string `json:"kernel"`
	Initrd  string `json:"initrd"`
	Cmdline string `json:"cmdline"`
}

// chooseBoot resolves the configured boot method for the accelerator.
func chooseBoot(want, accel string) (string, error) {
	switch want {
	case BootAuto:
		if accel == AccelTCG {
			return BootDirect, nil
		}
		return BootFirmware, nil
	case BootFirmware, BootDirect:
		return want, nil
	}
	return "", kiln.FieldErrorf(kiln.EINVALID, "boot", "boot method %q is not firmware, direct or empty (automatic)", want)
}

// bootFiles returns the kernel, initramfs and command line on the EFI
// system partition of the cached disk image base, extracted next to it
// (base + ".boot") the first time. The entry is the one systemd-boot would
// pick: loader.conf's default.
func (p *Platform) bootFiles(ctx context.Context, base, format string) (*directBoot, error) {
	dir := base + ".boot"
	b := &directBoot{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	if c, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		b.Cmdline = string(c)
		return b, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(base), ".boot-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	esp := filepath.Join(tmp, "esp")
	if err := p.extractESP(ctx, base, format, esp); err != nil {
		return nil, err
	}
	mread := func(path string) ([]byte, error) {
		out, err := exec.CommandContext(ctx, "mtype", "-i", esp, "::"+path).Output()
		if err != nil {
			return nil, fmt.Errorf("read %s from the EFI system partition: %w", path, err)
		}
		return out, nil
	}
	conf, err := mread("/loader/loader.conf")
	if err != nil {
		return nil, err
	}
	entry := ""
	for l := range strings.Lines(string(conf)) {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "default" {
			entry = f[1]
		}
	}
	if entry == "" || strings.ContainsAny(entry, "*?/") {
		return nil, fmt.Errorf("loader.conf on the EFI system partition names no default entry (or a pattern, %q)", entry)
	}
	e, err := mread("/loader/entries/" + entry)
	if err != nil {
		return nil, err
	}
	var kernel, initrd string
	sc := bufio.NewScanner(bytes.NewReader(e))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		switch k {
		case "linux":
			kernel = strings.TrimSpace(v)
		case "initrd":
			initrd = strings.TrimSpace(v)
		case "options":
			b.Cmdline = strings.TrimSpace(v)
		}
	}
	if kernel == "" || initrd == "" || b.Cmdline == "" {
		return nil, fmt.Errorf("boot entry %s has no linux, initrd or options line", entry)
	}
	if !slices.Contains(strings.Fields(b.Cmdline), "no_timer_check") {
		// Disks built before kiln added it (platform/vm/disk): a starved
		// virtual CPU fails the kernel's timer check and panics.
		b.Cmdline += " no_timer_check"
	}
	for from, to := range map[string]string{kernel: "vmlinuz", initrd: "initrd.img"} {
		if out, err := exec.CommandContext(ctx, "mcopy", "-n", "-i", esp, "::"+from, filepath.Join(tmp, to)).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("copy %s from the EFI system partition: %w: %s", from, err, bytes.TrimSpace(out))
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "cmdline"), []byte(b.Cmdline), 0o400); err != nil {
		return nil, err
	}
	if err := os.Remove(esp); err != nil {
		return nil, err
	}
	// A concurrent launch of the same image may have been first.
	if err := os.Rename(tmp, dir); err != nil && !errors.Is(err, os.ErrExist) && !errors.Is(err, syscall.ENOTEMPTY) {
		return nil, err
	}
	return b, nil
}

// espType is the EFI system partition's GPT type GUID as stored on disk.
var espType = []byte{0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b}

// rootType is the root partition's GPT type GUID (root-x86-64, systemd's
// Discoverable Partitions) as stored on disk.
var rootType = []byte{0xe3, 0xbc, 0x68, 0x4f, 0xcd, 0xe8, 0xb1, 0x4d, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09}

// extractESP copies the EFI system partition of the disk image (qcow2 or
// raw) to out.
func (p *Platform) extractESP(ctx context.Context, base, format, out string) error {
	return p.extractPartition(ctx, base, format, espType, "EFI system", out)
}

// extractPartition copies the first partition of GPT type typ (as stored
// on disk; name says it in errors) of the disk image (qcow2 or raw) to
// out, with `qemu-img dd`: first the partition table, then the
// partition's sectors.
func (p *Platform) extractPartition(ctx context.Context, base, format string, typ []byte, name, out string) error {
	// skip and count are in 512-byte sectors; qemu-img dd copies one block
	// per request, so the partition goes in the largest block that divides
	// its start and length (1 MiB for an aligned partition: 0.4 s instead
	// of 17 s for a 100 MiB ESP at 512 bytes, on a busy machine; a root
	// partition took minutes).
	// qemu-img dd's count is where the copy ends, skip included (QEMU 7.2:
	// count=N skip=M copies blocks M to N-1), not how many blocks it
	// copies; before, a partition came out short by its offset. Were a
	// later QEMU to count after the skip, the copy would only run past the
	// partition's end, which the file system inside ignores.
	dd := func(of string, skip, count uint64) ([]byte, error) {
		bs := ddBlock(skip, count)
		args := []string{"dd", "-f", format, "-O", "raw", "bs=" + strconv.FormatUint(bs*512, 10), "if=" + base, "of=" + of, "count=" + strconv.FormatUint((skip+count)/bs, 10)}
		if skip > 0 {
			args = append(args, "skip="+strconv.FormatUint(skip/bs, 10))
		}
		if b, err := exec.CommandContext(ctx, p.img, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("qemu-img dd: %w: %s", err, bytes.TrimSpace(b))
		}
		if of == out {
			return nil, nil
		}
		return os.ReadFile(of)
	}
	gpt, err := dd(out+".gpt", 0, 34)
	os.Remove(out + ".gpt")
	if err != nil {
		return err
	}
	if len(gpt) < 34*512 || string(gpt[512:520]) != "EFI PART" {
		return errors.New("the disk image has no GPT partition table")
	}
	h := gpt[512:]
	entriesLBA := binary.LittleEndian.Uint64(h[72:])
	n := binary.LittleEndian.Uint32(h[80:])
	size := binary.LittleEndian.Uint32(h[84:])
	if entriesLBA != 2 || size < 128 || uint64(n)*uint64(size) > 32*512 {
		return fmt.Errorf("unexpected GPT layout (entries at LBA %d, %d of %d bytes)", entriesLBA, n, size)
	}
	for i := range uint64(n) {
		e := gpt[2*512+i*uint64(size):]
		if !bytes.Equal(e[:16], typ) {
			continue
		}
		first, last := binary.LittleEndian.Uint64(e[32:]), binary.LittleEndian.Uint64(e[40:])
		if last < first {
			break
		}
		_, err := dd(out, first, last-first+1)
		return err
	}
	return fmt.Errorf("the disk image has no %s partition", name)
}

// ddBlock is the largest block, in 512-byte sectors and at most 1 MiB,
// that divides both skip and count.
func ddBlock(skip, count uint64) uint64 {
	bs := uint64(2048)
	for bs > 1 && (skip%bs != 0 || count%bs != 0) {
		bs /= 2
	}
	return bs
}

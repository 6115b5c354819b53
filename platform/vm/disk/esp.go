package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// buildESP writes the FAT32 EFI system partition: systemd-boot as the
// removable-media loader (no firmware variables needed), the kernel, the
// initramfs and one loader entry.
func buildESP(ctx context.Context, work, img, root string, k *kernelFiles, loader, cmdline string, ids diskIDs, epoch time.Time) error {
	stage := filepath.Join(work, "esp")
	if err := os.Mkdir(stage, 0o755); err != nil {
		return fmt.Errorf("disk image: %w", err)
	}
	conf := "timeout 0\ndefault kiln.conf\nconsole-mode keep\n"
	entry := fmt.Sprintf("title Linux %s (kiln)\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n", k.version, cmdline)
	files := map[string]string{} // image path -> host file
	for name, content := range map[string]string{"loader.conf": conf, "kiln.conf": entry} {
		p := filepath.Join(stage, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
		files[name] = p
	}
	// mcopy -m keeps the host files' times: copy the rest into the stage
	// too, so every time is the epoch.
	for name, src := range map[string]string{"BOOTX64.EFI": loader, "vmlinuz": filepath.Join(root, k.vmlinuz), "initrd.img": filepath.Join(root, k.initrd)} {
		p := filepath.Join(stage, name)
		if err := copyFile(src, p); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
		files[name] = p
	}
	var need int64
	for _, p := range files {
		if err := os.Chtimes(p, epoch, epoch); err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("disk image: %w", err)
		}
		need += fi.Size()
	}
	// FAT32 wants at least 65525 clusters: 64 MiB with 512-byte sectors and
	// one-sector clusters is the floor; room for a second kernel on top.
	const mib = 1 << 20
	size := max(64*mib, need*2+16*mib)
	size = (size + mib - 1) / mib * mib
	env := []string{"SOURCE_DATE_EPOCH=" + strconv.FormatInt(epoch.Unix(), 10), "MTOOLS_SKIP_CHECK=1"}
	if err := run(ctx, env, toolMkfsVfat, "-F", "32", "-n", "ESP", "--invariant", "-i", ids.volID, "-C", img, strconv.FormatInt(size/1024, 10)); err != nil {
		return err
	}
	if err := run(ctx, env, toolMmd, "-i", img, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"); err != nil {
		return err
	}
	for _, c := range [][2]string{
		{"BOOTX64.EFI", "::/EFI/BOOT/BOOTX64.EFI"},
		{"loader.conf", "::/loader/loader.conf"},
		{"kiln.conf", "::/loader/entries/kiln.conf"},
		{"vmlinuz", "::/vmlinuz"},
		{"initrd.img", "::/initrd.img"},
	} {
		if err := run(ctx, env, toolMcopy, "-m", "-i", img, files[c[0]], c[1]); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

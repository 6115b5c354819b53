package platformtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// vmImageRecipe is the test image plus Debian's kernel, so that a disk
// image made from it boots on a virtual machine, with an initramfs that
// holds only what a QEMU guest's root needs (smaller, faster to boot).
func vmImageRecipe(mirror, out string) []string {
	r := imageRecipe(mirror, out)
	extra := []string{
		"--include=linux-image-amd64",
		"--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && echo MODULES=list > \"$1/etc/initramfs-tools/conf.d/kiln-vm.conf\" && printf 'virtio_pci\\nvirtio_blk\\next4\\n' > \"$1/etc/initramfs-tools/modules\"",
	}
	return append(extra, r...)
}

// BakeVMImage bakes the test image with a kernel (for disk images and the
// VM platform) as a rootfs tarball into cacheDir, or returns the one baked
// there before from the same recipe. Like BakeImage it needs root and
// mmdebstrap and reaches the Debian mirror; a fresh bake takes minutes (the
// kernel's modules and initramfs).
func BakeVMImage(ctx context.Context, cacheDir string) (string, error) {
	mirror := os.Getenv("KILN_TEST_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	key := sha256.Sum256([]byte(strings.Join(vmImageRecipe(mirror, ""), "\x00")))
	out := filepath.Join(cacheDir, "platformtest-vm-"+hex.EncodeToString(key[:8])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp.tar", strings.TrimSuffix(out, ".tar"), os.Getpid())
	cmd := exec.CommandContext(ctx, "mmdebstrap", vmImageRecipe(mirror, tmp)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("bake test VM image: %w\n%s", err, b)
	}
	return out, os.Rename(tmp, out)
}

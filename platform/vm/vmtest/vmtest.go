// Package vmtest bakes the VM platform's test root filesystem: the
// platformtest image (systemd, busybox httpd serving
// platformtest.ImageHTTPBody on port 80) plus Debian's kernel, so that a
// disk image made from it boots. Only tests import it.
package vmtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/platform/platformtest"
)

// Epoch is the SOURCE_DATE_EPOCH of the baked tree.
const Epoch = 1700000000

func recipe(mirror, out string) []string {
	unit := `[Unit]
Description=kiln test HTTP server
[Service]
ExecStart=/bin/busybox httpd -f -p ` + fmt.Sprint(platformtest.ImageHTTPPort) + ` -h /srv/www
[Install]
WantedBy=multi-user.target
`
	return []string{
		"--variant=minbase",
		"--include=systemd-sysv,busybox,linux-image-amd64",
		// The initramfs needs only what boots a QEMU guest: smaller, faster.
		"--essential-hook=mkdir -p \"$1/etc/initramfs-tools/conf.d\" && echo MODULES=list > \"$1/etc/initramfs-tools/conf.d/kiln-vm.conf\" && mkdir -p \"$1/etc/initramfs-tools\" && printf 'virtio_pci\\nvirtio_blk\\next4\\n' > \"$1/etc/initramfs-tools/modules\"",
		"--customize-hook=echo kiln-test > \"$1/etc/hostname\"",
		"--customize-hook=rm -f \"$1/etc/resolv.conf\"",
		"--customize-hook=mkdir -p \"$1/srv/www\" && printf '%s' '" + platformtest.ImageHTTPBody + "' > \"$1/srv/www/index.html\"",
		"--customize-hook=printf '%s' '" + unit + "' > \"$1/etc/systemd/system/kiln-httpd.service\"",
		"--customize-hook=chroot \"$1\" systemctl enable kiln-httpd.service",
		"bookworm", out, mirror,
	}
}

// BakeRootfs bakes the tree as a tarball into cacheDir, or returns the one
// baked there before from the same recipe. It needs root and mmdebstrap and
// reaches the Debian mirror (KILN_TEST_MIRROR overrides deb.debian.org); a
// fresh bake takes a few minutes (the kernel and its initramfs).
func BakeRootfs(ctx context.Context, cacheDir string) (string, error) {
	mirror := os.Getenv("KILN_TEST_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	key := sha256.Sum256([]byte(strings.Join(recipe(mirror, ""), "\x00")))
	out := filepath.Join(cacheDir, "vm-rootfs-"+hex.EncodeToString(key[:8])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return "", err
	}
	tmp := fmt.Sprintf("%s.%d.tmp.tar", strings.TrimSuffix(out, ".tar"), os.Getpid())
	cmd := exec.CommandContext(ctx, "mmdebstrap", recipe(mirror, tmp)...)
	cmd.Env = append(os.Environ(), fmt.Sprintf("SOURCE_DATE_EPOCH=%d", Epoch))
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("bake the VM test rootfs: %w\n%s", err, b)
	}
	return out, os.Rename(tmp, out)
}

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

// What the test image serves and holds.
const (
	ImageHTTPPort  = 80
	ImageHTTPBody  = "hello from a kiln test instance\n"
	ImageOSRelease = "ID=debian"
)

// imageRecipe is the mmdebstrap command line (after the binary) of the test
// image: Debian bookworm minbase with systemd as init and busybox httpd
// serving ImageHTTPBody on ImageHTTPPort from a unit enabled at boot.
func imageRecipe(mirror, out string) []string {
	unit := `[Unit]
Description=kiln test HTTP server
[Service]
ExecStart=/bin/busybox httpd -f -p ` + fmt.Sprint(ImageHTTPPort) + ` -h /srv/www
[Install]
WantedBy=multi-user.target
`
	return []string{
		"--variant=minbase",
		"--include=systemd-sysv,busybox",
		"--customize-hook=echo kiln-test > \"$1/etc/hostname\"",
		"--customize-hook=rm -f \"$1/etc/resolv.conf\"",
		"--customize-hook=mkdir -p \"$1/srv/www\" && printf '%s' '" + ImageHTTPBody + "' > \"$1/srv/www/index.html\"",
		"--customize-hook=printf '%s' '" + unit + "' > \"$1/etc/systemd/system/kiln-httpd.service\"",
		"--customize-hook=chroot \"$1\" systemctl enable kiln-httpd.service",
		"bookworm", out, mirror,
	}
}

// BakeImage bakes the test image with mmdebstrap into cacheDir, or returns
// the one baked there before from the same recipe. It needs root and
// mmdebstrap, and reaches the Debian mirror (KILN_TEST_MIRROR overrides
// deb.debian.org).
func BakeImage(ctx context.Context, cacheDir string) (string, error) {
	mirror := os.Getenv("KILN_TEST_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	key := sha256.Sum256([]byte(strings.Join(imageRecipe(mirror, ""), "\x00")))
	out := filepath.Join(cacheDir, "platformtest-"+hex.EncodeToString(key[:8])+".tar")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(cacheDir, 0o700); err != nil {
		return "", err
	}
	// Unique per process (several test binaries may bake at once); mmdebstrap
	// picks the format by the extension.
	tmp := fmt.Sprintf("%s.%d.tmp.tar", strings.TrimSuffix(out, ".tar"), os.Getpid())
	cmd := exec.CommandContext(ctx, "mmdebstrap", imageRecipe(mirror, tmp)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1700000000")
	if b, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("bake test image: %w\n%s", err, b)
	}
	return out, os.Rename(tmp, out)
}

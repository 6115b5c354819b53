package bake

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bootstrap says what mmdebstrap installs.
type Bootstrap struct {
	Suite      string
	Mirror     string
	Variant    string   // mmdebstrap's --variant; empty leaves its default
	Components []string // empty leaves its default (main)
	Include    []string // extra packages
	// Epoch is SOURCE_DATE_EPOCH: the same epoch and package versions give
	// the same files. Use the Release file's date.
	Epoch time.Time
	// Hostname written to /etc/hostname (default "localhost").
	Hostname string
	// ExportLists, when set, is a host directory that receives a copy of
	// apt's package lists before mmdebstrap removes them from the image,
	// so later apt steps on the same mirror snapshot need not download
	// them again.
	ExportLists string
}

// Args returns mmdebstrap's arguments to bootstrap into target (a directory
// or a file name whose suffix picks the format, as mmdebstrap decides).
func (b *Bootstrap) Args(target, format string) []string {
	args := []string{"--mode=root", "--quiet"}
	if format != "" {
		args = append(args, "--format="+format)
	}
	if b.Variant != "" {
		args = append(args, "--variant="+b.Variant)
	}
	if len(b.Components) > 0 {
		args = append(args, "--components="+strings.Join(b.Components, ","))
	}
	if len(b.Include) > 0 {
		args = append(args, "--include="+strings.Join(b.Include, ","))
	}
	host := b.Hostname
	if host == "" {
		host = "localhost"
	}
	// The host's hostname and resolver must not leak into the image; the
	// platform provides both when an instance runs. An empty machine-id
	// makes each instance generate its own on first boot.
	args = append(args,
		"--customize-hook=echo "+shellQuote(host)+` > "$1/etc/hostname"`,
		`--customize-hook=printf '# provided by the platform at run time\n' > "$1/etc/resolv.conf"`,
		`--customize-hook=: > "$1/etc/machine-id"`,
		`--customize-hook=rm -f "$1/var/lib/dbus/machine-id"`)
	if b.ExportLists != "" {
		args = append(args, "--customize-hook=mkdir -p "+shellQuote(b.ExportLists)+` && cp -a "$1/var/lib/apt/lists/." `+shellQuote(b.ExportLists)+"/")
	}
	args = append(args, b.Suite, target, b.Mirror)
	return args
}

// Command returns the mmdebstrap command; its environment carries
// SOURCE_DATE_EPOCH.
func (b *Bootstrap) Command(ctx context.Context, target, format string, out io.Writer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "mmdebstrap", b.Args(target, format)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(b.Epoch.Unix(), 10), "LC_ALL=C.UTF-8")
	cmd.Stdout, cmd.Stderr = out, out
	terminate(cmd)
	return cmd
}

// Run bootstraps into dir (which must not exist or be empty).
func (b *Bootstrap) Run(ctx context.Context, dir string, out io.Writer) error {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return fmt.Errorf("mmdebstrap is not installed (apt-get install mmdebstrap): %w", err)
	}
	if err := b.Command(ctx, dir, "directory", out).Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("mmdebstrap %s from %s: %w (its output is in the build log)", b.Suite, b.Mirror, err)
	}
	return nil
}

// terminate makes a cancelled command end in an orderly way: SIGTERM to
// its process group, SIGKILL 10 s later.
func terminate(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	}
	cmd.WaitDelay = 10 * time.Second
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

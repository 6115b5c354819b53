package bake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	// Lists, when set, is a host directory holding apt's package lists
	// of exactly this mirror, suite and components, as apt verified them
	// against the mirror's signed Release — which the caller has checked
	// is still the mirror's current one. The bootstrap copies the files
	// named ListsPrefix* into the chroot and skips apt-get update: the
	// download it would repeat (tens of MB) gives the same lists.
	Lists, ListsPrefix string
	// DebCache, when set, is a host directory of downloaded .deb files
	// shared between bootstraps (and apt steps): the bootstrap starts
	// with them and adds what it downloaded. See DebCacheArgs.
	DebCache string
	// Pins, when set, is a host file of apt preferences (PinFile) in
	// force while the bootstrap installs packages, and removed before
	// the image is finished.
	Pins string
	// UnsafeIO makes dpkg skip its fsync of every unpacked file
	// (--force-unsafe-io) while the bootstrap runs; the setting is
	// removed before the image is finished, so the image's own dpkg stays
	// safe. Use it when the result is made durable once at the end (the
	// build fsyncs the artifact it writes).
	UnsafeIO bool
	// EatMyData, when set, is the host's libeatmydata (EatMyData()): the
	// chroot's dpkg, its maintainer scripts and apt's dpkg runs skip every
	// fsync while the bootstrap runs (see eatMyDataHooks); nothing of it
	// stays in the image. Same condition as UnsafeIO.
	EatMyData string
	// DecompressOnce, when set, is a host directory (created by Run) for
	// the dpkg-deb shims that decompress each essential package once
	// instead of twice (fsys.go); nothing of them stays in the image.
	DecompressOnce string
	// WaitFor, when set, is a file the bootstrap waits for (at most a
	// minute) before it hands the package cache to apt: Prefetch's
	// parallel downloads create it when they are done.
	WaitFor string
}

// unsafeIOConf is the dpkg configuration file that carries
// --force-unsafe-io during the bootstrap.
const unsafeIOConf = "/etc/dpkg/dpkg.cfg.d/kiln-unsafe-io"

// pinPath is where a bootstrap's pins live in the chroot while it runs.
const pinPath = "/etc/apt/preferences.d/kiln-rebuild.pref"

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
	if b.EatMyData != "" || b.DecompressOnce != "" {
		// Its customize hook comes first (after the one stopping the
		// decompression ahead): the ones below see the image without the
		// wrapper.
		shim := ""
		if b.DecompressOnce != "" {
			shim = filepath.Join(b.DecompressOnce, "chroot-dpkg-deb")
			args = append(args, stopHook(b.DecompressOnce))
		}
		args = append(args, dpkgWrapperHooks(b.EatMyData, shim)...)
	}
	args = append(args,
		"--customize-hook=echo "+shellQuote(host)+` > "$1/etc/hostname"`,
		`--customize-hook=printf '# provided by the platform at run time\n' > "$1/etc/resolv.conf"`,
		`--customize-hook=: > "$1/etc/machine-id"`,
		`--customize-hook=rm -f "$1/var/lib/dbus/machine-id"`,
		// One initramfs per kernel, made once: the kernel's postinst hook
		// skips it (INITRD=No in Command's environment), initramfs-tools'
		// trigger then finds none to update, and this hook makes them.
		// Without it, installing linux-image-amd64 runs mkinitramfs twice
		// (the hook's -c, then the trigger's -u), minutes each on a busy
		// machine with MODULES=most.
		initramfsHook)
	if b.UnsafeIO {
		// Before the essential packages are unpacked (dpkg reads its
		// configuration directory from the chroot), gone before the
		// customize hooks below see the image.
		args = append(args,
			`--setup-hook=mkdir -p "$1/etc/dpkg/dpkg.cfg.d" && echo force-unsafe-io > "$1`+unsafeIOConf+`"`,
			`--customize-hook=rm -f "$1`+unsafeIOConf+`"`)
	}
	if b.WaitFor != "" && b.DebCache != "" {
		w := shellQuote(b.WaitFor)
		args = append(args, `--setup-hook=i=0; while [ ! -e `+w+` ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done`)
	}
	args = append(args, DebCacheArgs(b.DebCache)...)
	if b.Lists != "" && b.ListsPrefix != "" {
		// Copies, not links: nothing the bootstrap runs can change the
		// shared files. The lists are the ones ExportLists would write
		// back, so that hook is left out.
		args = append(args, "--skip=update",
			`--setup-hook=mkdir -p "$1/var/lib/apt/lists/partial" && cp -p `+shellQuote(b.Lists)+"/"+shellQuote(b.ListsPrefix)+`* "$1/var/lib/apt/lists/"`)
	}
	if b.Pins != "" {
		args = append(args,
			"--setup-hook=cp "+shellQuote(b.Pins)+` "$1`+pinPath+`"`,
			`--customize-hook=rm -f "$1`+pinPath+`"`)
	}
	if b.ExportLists != "" && b.Lists == "" {
		// Hard links, not copies, where the file system allows: the chroot's
		// names are removed by mmdebstrap's cleanup right after.
		l := shellQuote(b.ExportLists)
		args = append(args, "--customize-hook=mkdir -p "+l+` && for f in "$1"/var/lib/apt/lists/*; do [ -f "$f" ] || continue; n=${f##*/}; [ "$n" = lock ] && continue; t=`+l+`/.tmp-$$-"$n"; if ln "$f" "$t" 2>/dev/null || cp -p "$f" "$t"; then mv -f "$t" `+l+`/"$n"; else rm -f "$t"; exit 1; fi; done`)
	}
	args = append(args, b.Suite, target, b.Mirror)
	return args
}

// DebCacheArgs returns the mmdebstrap options that make a bootstrap read
// and fill the package cache dir (none when dir is empty), after the
// pattern of mmdebstrap(1)'s EXAMPLES, made safe for concurrent bakes:
//
//   - a setup hook hard-links (or copies, across file systems) every
//     cached .deb into the chroot's /var/cache/apt/archives; apt checks
//     each against the signed package lists before using it, and one
//     that a concurrent prune removed meanwhile is simply downloaded;
//   - --skip=essential/unlink keeps the essential packages mmdebstrap
//     downloaded until the customize hook has seen them;
//   - a customize hook puts each .deb the cache lacks into it under a
//     temporary name, then renames it: a reader never sees half a file,
//     and two bakes adding the same package both write the same bytes.
//
// mmdebstrap's cleanup (apt-get clean) then empties the chroot's
// /var/cache/apt/archives, so the image holds none of the packages.
func DebCacheArgs(dir string) []string {
	if dir == "" {
		return nil
	}
	c := shellQuote(dir)
	return []string{
		"--skip=essential/unlink",
		`--setup-hook=mkdir -p ` + c + ` "$1/var/cache/apt/archives" && for f in ` + c + `/*.deb; do [ -f "$f" ] || continue; ln "$f" "$1/var/cache/apt/archives/" 2>/dev/null || cp "$f" "$1/var/cache/apt/archives/" 2>/dev/null || :; done`,
		`--customize-hook=for f in "$1"/var/cache/apt/archives/*.deb; do [ -f "$f" ] || continue; n=${f##*/}; [ -e ` + c + `/"$n" ] && continue; t=` + c + `/.tmp-$$-"$n".part; if ln "$f" "$t" 2>/dev/null || cp "$f" "$t"; then mv -f "$t" ` + c + `/"$n"; else rm -f "$t"; fi; done`,
	}
}

// initramfsHook makes the initramfs of every kernel the image has, once,
// after all packages are installed (see Args and Command's INITRD=No).
// dracut's kernel hook honours INITRD=No as well.
const initramfsHook = `--customize-hook=if [ -n "$(chroot "$1" linux-version list 2>/dev/null)" ]; then ` +
	`if [ -x "$1/usr/sbin/update-initramfs" ]; then chroot "$1" update-initramfs -c -k all; ` +
	`elif [ -x "$1/usr/bin/dracut" ]; then for k in $(chroot "$1" linux-version list); do chroot "$1" dracut -f "/boot/initrd.img-$k" "$k" || exit 1; done; fi; fi`

// Command returns the mmdebstrap command; its environment carries
// SOURCE_DATE_EPOCH, and INITRD=No, which makes the kernel packages'
// postinst hook leave the initramfs to the customize hook that makes it
// once (initramfsHook).
func (b *Bootstrap) Command(ctx context.Context, target, format string, out io.Writer) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "mmdebstrap", b.Args(target, format)...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(b.Epoch.Unix(), 10), "LC_ALL=C.UTF-8", "INITRD=No")
	if b.DecompressOnce != "" {
		// The host's shim first: mmdebstrap's extraction runs dpkg-deb.
		cmd.Env = append(cmd.Env, "PATH="+filepath.Join(b.DecompressOnce, "bin")+":"+os.Getenv("PATH"))
	}
	cmd.Stdout, cmd.Stderr = out, out
	terminate(cmd)
	return cmd
}

// Run bootstraps into dir (which must not exist or be empty).
func (b *Bootstrap) Run(ctx context.Context, dir string, out io.Writer) error {
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return fmt.Errorf("mmdebstrap is not installed (apt-get install mmdebstrap): %w", err)
	}
	if b.DecompressOnce != "" {
		if _, _, err := Shims(b.DecompressOnce); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	}
	if b.DecompressOnce != "" {
		// Beside mmdebstrap, on the cores its extraction leaves idle.
		dctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			decompress(dctx, dir, b.DecompressOnce, max(1, runtime.NumCPU()-1))
		}()
		defer func() { stop(); <-done }()
	}
	nospace := &spaceWatch{w: out}
	if err := b.Command(ctx, dir, "directory", nospace).Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if nospace.seen {
			err = fmt.Errorf("%w: %w", ErrNoSpace, err)
		}
		return fmt.Errorf("mmdebstrap %s from %s: %w (its output is in the build log)", b.Suite, b.Mirror, err)
	}
	return nil
}

// ErrNoSpace is in the error of a bootstrap whose output said its file
// system was full.
var ErrNoSpace = errors.New("no space left on the bootstrap's file system")

// spaceWatch passes output on and notes whether it said ENOSPC's message
// (also across two writes).
type spaceWatch struct {
	w    io.Writer
	tail []byte
	seen bool
}

const enospc = "No space left on device"

func (s *spaceWatch) Write(p []byte) (int, error) {
	if !s.seen {
		buf := append(s.tail, p...)
		s.seen = bytes.Contains(buf, []byte(enospc))
		s.tail = append(s.tail[:0], buf[max(0, len(buf)-len(enospc)):]...)
	}
	return s.w.Write(p)
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

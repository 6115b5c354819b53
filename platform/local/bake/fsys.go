package bake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Decompressing each package once. mmdebstrap bootstraps in two passes
// over the essential packages: it extracts each one (dpkg-deb
// --fsys-tarfile | tar) so the chroot has a shell and a dpkg, then
// installs them all properly with the chroot's dpkg --install, which
// decompresses every data archive again. Decompressing (xz, mostly) is
// the largest share of dpkg-deb's CPU in a bootstrap, on the critical
// path, so kiln keeps the first pass's output: a dpkg-deb shim, first on
// the host's PATH for the extraction, writes the decompressed archive of
// each package to /run/kiln-fsys in the chroot, named by the .deb's
// sha256, and streams it from there; the chroot's shim (first on the PATH
// the dpkg wrapper gives dpkg, see dpkgWrapperHooks) streams the kept
// archive instead of decompressing again. A kept archive is byte for byte
// what dpkg-deb --fsys-tarfile prints (that is how it was made), a
// package is found only by its exact content, and anything else — other
// dpkg-deb commands, packages outside apt's archive, a package not seen
// before — runs dpkg-deb itself. /run/kiln-fsys and /run/kiln-shim are
// removed by the wrapper's customize hook, and mmdebstrap empties /run
// when it finishes (cleanup/run) anyway.

const (
	// fsysDir holds the kept archives, in the chroot.
	fsysDir = "/run/kiln-fsys"
	// shimDir holds the chroot's dpkg-deb shim.
	shimDir = "/run/kiln-shim"
)

// shimScript is the dpkg-deb shim; keep makes it write the archive it
// does not find (the host's, for mmdebstrap's extraction), else it only
// reads (the chroot's: what is not kept is decompressed as dpkg-deb
// always does, without writing it a second time). The root of the chroot
// is what precedes /var/cache/apt/archives/ in the package's path (empty
// in the chroot).
func shimScript(real string, keep bool) string {
	s := `#!/bin/sh
# kiln: dpkg-deb --fsys-tarfile of a package in apt's archive, decompressed
# once while a bootstrap runs (platform/local/bake/fsys.go); anything else
# is dpkg-deb itself.
real=` + shellQuote(real) + `
if [ "$#" -eq 2 ] && [ "$1" = --fsys-tarfile ]; then
	deb=$2
	# apt hands dpkg links to the archive (/tmp/apt-dpkg-install-*/).
	[ -L "$deb" ] && deb=$(readlink -f "$deb")
	case $deb in
	*/var/cache/apt/archives/*.deb)
		d="${deb%/var/cache/apt/archives/*}` + fsysDir + `"
		if h=$(sha256sum < "$deb"); then
			t="$d/${h%% *}.tar"
			[ -f "$t" ] && exec cat "$t"
`
	if keep {
		s += `			if mkdir -p "$d" && "$real" --fsys-tarfile "$deb" > "$t.$$" && mv -f "$t.$$" "$t"; then
				exec cat "$t"
			fi
			rm -f "$t.$$"
`
	}
	return s + `		fi
		;;
	esac
fi
exec "$real" "$@"
`
}

// Shims writes the host's and the chroot's dpkg-deb shims into dir: the
// host's as dir/bin/dpkg-deb (put dir/bin first on mmdebstrap's PATH) and
// the chroot's as dir/chroot-dpkg-deb (Bootstrap.Shim). It returns both.
func Shims(dir string) (hostBin, chroot string, err error) {
	real, err := exec.LookPath("dpkg-deb")
	if err != nil {
		return "", "", fmt.Errorf("dpkg-deb is not installed (apt-get install dpkg): %w", err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", "", err
	}
	hostBin = filepath.Join(dir, "bin")
	if err := os.MkdirAll(hostBin, 0o755); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(hostBin, "dpkg-deb"), []byte(shimScript(real, true)), 0o755); err != nil {
		return "", "", err
	}
	chroot = filepath.Join(dir, "chroot-dpkg-deb")
	if err := os.WriteFile(chroot, []byte(shimScript("/usr/bin/dpkg-deb", false)), 0o755); err != nil {
		return "", "", err
	}
	return hostBin, chroot, nil
}

// Ahead of mmdebstrap's extraction and of dpkg, which ask for one package
// after the other, decompress runs beside them: it watches the chroot's
// archive for downloaded packages and keeps their decompressed archives
// on the other cores, so both mostly find them kept (the chroot's shim
// reads what is kept, for the packages apt installs after the essential
// ones too). It stops at the first customize hook (every package is
// installed; see stopHook) and whenever Run returns, killing what it
// runs, so nothing writes in the chroot after.

// stopFile is created in the shims directory by the first customize hook
// to stop decompress; stoppedFile by decompress once it has.
const (
	stopFile    = "stop"
	stoppedFile = "stopped"
)

// stopHook is the customize hook (the first) that stops decompress and
// waits, at most a minute, for it to say it has.
func stopHook(shims string) string {
	d := shellQuote(shims)
	return `--customize-hook=: > ` + d + `/` + stopFile + `; i=0; while [ ! -e ` + d + `/` + stoppedFile + ` ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`
}

// decompress keeps the decompressed archive of every package that appears
// in root's apt archive until the shims directory has the stop file or
// ctx ends, on workers goroutines; it then creates the stopped file.
func decompress(ctx context.Context, root, shims string, workers int) {
	defer func() { _ = os.WriteFile(filepath.Join(shims, stoppedFile), nil, 0o644) }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	archive := filepath.Join(root, "var/cache/apt/archives")
	kept := filepath.Join(root, strings.TrimPrefix(fsysDir, "/"))
	queue := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deb := range queue {
				keepArchive(ctx, deb, kept)
			}
		}()
	}
	defer wg.Wait()
	defer close(queue)
	seen := map[string]bool{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(filepath.Join(shims, stopFile)); err == nil {
			return
		}
		// Last name first: the extraction goes through the packages by
		// name from the first, so the two meet once, in the middle,
		// rather than decompressing the same packages side by side.
		debs, _ := filepath.Glob(filepath.Join(archive, "*.deb"))
		slices.Reverse(debs)
		for _, deb := range debs {
			if seen[deb] {
				continue
			}
			seen[deb] = true
			select {
			case queue <- deb:
			case <-ctx.Done():
				return
			}
			if _, err := os.Stat(filepath.Join(shims, stopFile)); err == nil {
				return
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// keepArchive writes deb's decompressed data archive to dir under the
// name the shim looks for (the .deb's sha256), through a temporary name;
// any failure leaves it to the shim.
func keepArchive(ctx context.Context, deb, dir string) {
	f, err := os.Open(deb)
	if err != nil {
		return
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	f.Close()
	if err != nil {
		return
	}
	t := filepath.Join(dir, hex.EncodeToString(h.Sum(nil))+".tar")
	if _, err := os.Stat(t); err == nil {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	out, err := os.CreateTemp(dir, ".kiln-*")
	if err != nil {
		return
	}
	defer os.Remove(out.Name())
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	cmd.Stdout = out
	err = cmd.Run()
	if cerr := out.Close(); err == nil && cerr == nil && ctx.Err() == nil {
		_ = os.Rename(out.Name(), t)
	}
}

package filedrift

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// VolatilePaths are where a running system writes as a matter of course:
// drift detection counts changes there but does not report them. Anything
// else an instance changed in itself is drift.
var VolatilePaths = []string{
	"/var/log",                 // logs and the journal
	"/var/lib/systemd",         // timers, random seed, catalog, coredumps
	"/var/lib/private/systemd", // DynamicUser state
	"/var/cache",               // caches (ldconfig, apt, man)
	"/var/tmp", "/tmp", "/run", // temporary files
	"/etc/machine-id", "/var/lib/dbus/machine-id", // written at first boot
	"/etc/.pwd.lock",                 // left by shadow tools
	"/etc/.updated", "/var/.updated", // systemd's ConditionNeedsUpdate stamps
	"/var/lib/apt/lists", // package indexes, not packages
	"/root/.cache",
}

// Volatile reports whether p is under one of VolatilePaths or matches one
// of the image's own patterns (definition.VolatileFile). Walks ask for a
// directory before what it holds and skip a matching one whole, so a
// pattern that matches a directory covers everything in it.
func Volatile(p string, patterns []string) bool {
	for _, v := range VolatilePaths {
		if p == v || strings.HasPrefix(p, v+"/") {
			return true
		}
	}
	for _, pat := range patterns {
		if definition.MatchVolatile(pat, p) {
			return true
		}
	}
	return false
}

// ImageVolatile reads the image's own volatile patterns from its root
// filesystem at root (definition.VolatileFile, written by the build); an
// image built without any has none. The file is opened with root as "/",
// so a symlink in the image cannot make the host read its own files.
func ImageVolatile(root string) ([]string, error) {
	b, err := ReadInRoot(root, definition.VolatileFile, 1<<20)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the image's %s: %w", definition.VolatileFile, err)
	}
	pats, err := definition.ParseVolatile(b)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "the image's %v; rebuild the image with a valid volatile attribute", err)
	}
	return pats, nil
}

// ReadInRoot reads at most limit bytes of the file at name inside the tree
// root, resolving symlinks as if root were "/": a link in an image or an
// instance cannot make the host read its own files.
func ReadInRoot(root, name string, limit int64) ([]byte, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, err
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), strings.TrimPrefix(name, "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: filepath.Join(root, name), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(root, name))
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

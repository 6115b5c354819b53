package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/internal/filedrift"
)

// dpkgStatus is where dpkg records installed packages; maxStatus bounds
// how much of it drift reads (a full server's is a few MB).
const (
	dpkgStatus = "var/lib/dpkg/status"
	maxStatus  = 256 << 20
)

// CompareOverlay reports how an instance differs from its image: upper is
// its overlay upper directory (what it wrote: new and copied-up files,
// whiteouts for deletions), lower the image's root filesystem. Paths under
// filedrift.VolatilePaths or matching the image's own volatile patterns
// (read from lower, definition.VolatileFile) are counted in Ignored, not
// reported.
// Packages are compared by dpkg's status file in both, or against manifest
// when the image's status file cannot be read.
func CompareOverlay(ctx context.Context, upper, lower string, manifest []kiln.Package) (*kiln.Drift, error) {
	d := &kiln.Drift{Files: []kiln.DriftEntry{}, Packages: []kiln.DriftEntry{}}
	patterns, err := filedrift.ImageVolatile(lower)
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(upper, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		rel, _ := filepath.Rel(upper, p)
		if rel == "." {
			return nil
		}
		abs := "/" + filepath.ToSlash(rel)
		if filedrift.Volatile(abs, patterns) {
			d.Ignored++
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		low := filepath.Join(lower, rel)
		linfo, lerr := os.Lstat(low)
		inImage := lerr == nil
		switch {
		case isWhiteout(info):
			if inImage {
				d.Files = append(d.Files, kiln.DriftEntry{Kind: kiln.DriftDeleted, Path: abs})
			}
		case info.IsDir():
			if !inImage {
				d.Files = append(d.Files, kiln.DriftEntry{Kind: kiln.DriftAdded, Path: abs + "/"})
			} else if opaque(p) {
				d.Files = append(d.Files, kiln.DriftEntry{Kind: kiln.DriftReplaced, Path: abs + "/"})
			} else if !linfo.IsDir() || metaDiffers(info, linfo) {
				d.Files = append(d.Files, kiln.DriftEntry{Kind: kiln.DriftChanged, Path: abs + "/"})
			}
		default:
			if !inImage {
				d.Files = append(d.Files, kiln.DriftEntry{Kind: kiln.DriftAdded, Path: abs})
			} else if differs, err := fileDiffers(p, low, info, linfo); err != nil {
				return err
			} else if differs {
				d.Files = append(d.Files, kiln.DriftEntry{Kind: kiln.DriftChanged, Path: abs})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("compare %s with the image: %w", upper, err)
	}
	now, err := filedrift.ReadInRoot(upper, dpkgStatus, maxStatus)
	if errors.Is(err, fs.ErrNotExist) {
		return d, nil // dpkg's status untouched: no package changed
	}
	if err != nil {
		return nil, err
	}
	var was map[string]string
	if b, err := filedrift.ReadInRoot(lower, dpkgStatus, maxStatus); err == nil {
		was = installed(b)
	} else {
		was = map[string]string{}
		for _, p := range manifest {
			was[p.Name] = p.Version
		}
	}
	d.Packages = comparePackages(was, installed(now))
	return d, nil
}

// isWhiteout: overlayfs marks a deleted path with a 0/0 character device.
func isWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

func opaque(p string) bool {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(p, "trusted.overlay.opaque", buf)
	return err == nil && n > 0 && buf[0] == 'y'
}

func metaDiffers(a, b fs.FileInfo) bool { return filedrift.MetaOf(a) != filedrift.MetaOf(b) }

// fileDiffers compares a copied-up file with the image's: type, mode,
// owner, link target or content.
func fileDiffers(p, low string, info, linfo fs.FileInfo) (bool, error) {
	if metaDiffers(info, linfo) {
		return true, nil
	}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		a, err1 := os.Readlink(p)
		b, err2 := os.Readlink(low)
		return err1 != nil || err2 != nil || a != b, nil //nolint:nilerr // an unreadable link counts as drift
	case info.Mode().IsRegular():
		if info.Size() != linfo.Size() {
			return true, nil
		}
		return contentDiffers(p, low)
	}
	return false, nil
}

func contentDiffers(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64<<10), make([]byte, 64<<10)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return true, nil
		}
		if ea != nil || eb != nil {
			return false, nil
		}
	}
}

// installed parses a dpkg status file into the installed packages'
// versions, keyed "name" (or "name:arch" for a second architecture).
func installed(status []byte) map[string]string {
	out := map[string]string{}
	_ = debian.ScanParagraphs(bytes.NewReader(status), []string{"Package", "Version", "Status", "Architecture"}, func(p debian.Paragraph) error {
		name := p["Package"]
		if name == "" || !strings.HasSuffix(p["Status"], " installed") {
			return nil
		}
		key := name
		if _, dup := out[key]; dup {
			key = name + ":" + p["Architecture"]
		}
		out[key] = p["Version"]
		return nil
	})
	return out
}

func comparePackages(was, now map[string]string) []kiln.DriftEntry {
	out := []kiln.DriftEntry{}
	for name, v := range now {
		switch old, ok := was[name]; {
		case !ok:
			out = append(out, kiln.DriftEntry{Kind: kiln.DriftAdded, Package: name, To: v})
		case old != v:
			out = append(out, kiln.DriftEntry{Kind: kiln.DriftChanged, Package: name, From: old, To: v})
		}
	}
	for name, v := range was {
		if _, ok := now[name]; !ok {
			out = append(out, kiln.DriftEntry{Kind: kiln.DriftDeleted, Package: name, From: v})
		}
	}
	slices.SortFunc(out, func(a, b kiln.DriftEntry) int { return strings.Compare(a.Package, b.Package) })
	return out
}

// OverlayDirs is what a platform offers for drift detection (the local
// one does): where an instance's writes are and its image's root
// filesystem.
type OverlayDirs interface {
	// UpperDir holds what the instance changed (overlayfs upper layer).
	UpperDir(id string) string
	// LowerDir is the image's root filesystem; ENOTFOUND when the
	// instance is not on this machine.
	LowerDir(id string) (string, error)
	// CredentialDrift reports how the configuration delivered at launch
	// (outside the overlay: systemd credentials) differs from what the
	// running instance holds now, as file entries.
	CredentialDrift(ctx context.Context, id string) ([]kiln.DriftEntry, error)
}

// CompareInstance reports how instance id differs from its image, as
// CompareOverlay does, with the directories dirs gives for it, and how
// the configuration it holds differs from what it was given at launch.
func CompareInstance(ctx context.Context, dirs OverlayDirs, id string, manifest []kiln.Package) (*kiln.Drift, error) {
	lower, err := dirs.LowerDir(id)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "%s; drift is checked on the machine where the instance runs", kiln.ErrorMessage(err))
	}
	if err != nil {
		return nil, err
	}
	d, err := CompareOverlay(ctx, dirs.UpperDir(id), lower, manifest)
	if err != nil {
		return nil, err
	}
	creds, err := dirs.CredentialDrift(ctx, id)
	if err != nil {
		return nil, err
	}
	d.Files = append(d.Files, creds...)
	return d, nil
}

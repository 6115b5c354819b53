package filedrift

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kiln-project/kiln"
)

// GuestSkip are the paths a comparison inside a running machine does not
// look at: kernel and memory file systems, which no image holds and the
// local platform's overlay never sees either.
var GuestSkip = []string{"/proc", "/sys", "/dev", "/run", "/tmp"}

// Options tune Compare.
type Options struct {
	// Skip are absolute paths not compared at all (neither reported nor
	// counted), as well as everything beneath them; nil means GuestSkip.
	Skip []string
	// HashAll hashes every regular file whose metadata matches, ignoring
	// the manifest's Stamp (to measure what a full comparison costs).
	HashAll bool
}

// Result is how a live tree differs from its image's manifest.
type Result struct {
	// Files are the differences, in walk order, as the local platform
	// reports them (kiln.DriftEntry kinds and paths; a directory's path
	// ends in "/").
	Files []kiln.DriftEntry `json:"files"`
	// Ignored counts changed paths under volatile locations.
	Ignored int `json:"ignored"`
	// Walked counts the paths looked at; Hashed the files whose content
	// was hashed, HashedBytes their size.
	Walked      int   `json:"walked"`
	Hashed      int   `json:"hashed"`
	HashedBytes int64 `json:"hashed_bytes"`
}

// Compare walks the tree at root (normally "/" inside a virtual machine),
// on root's file system alone, and reports how it differs from m, with the
// rules the local platform applies to its overlay (rollout.CompareOverlay):
//
//   - a path not in the image is added (a new directory and what it holds);
//   - one whose type, mode or owner differs, a symlink whose target
//     differs, a regular file whose size or content differs is changed
//     (a directory only by type, mode or owner);
//   - a path of the image that is gone is deleted, reported once at the
//     highest missing directory;
//   - paths under VolatilePaths or matching m.Volatile count in Ignored
//     when they differ (by existence, type, mode, owner, size, link target
//     or a change time after m.Stamp), and a matching directory counts
//     once.
//
// Where the overlay would say "replaced" (a directory of the image removed
// and made anew), a tree says what is gone and what was added in it.
func Compare(ctx context.Context, root string, m *Manifest, opt Options) (*Result, error) {
	skip := opt.Skip
	if skip == nil {
		skip = GuestSkip
	}
	rootInfo, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	dev := devOf(rootInfo)
	c := &comparer{m: m, opt: opt, res: &Result{Files: []kiln.DriftEntry{}}, seenDir: map[string]bool{"/": true}, seen: map[string]bool{}}
	var passed []string // skipped, mounted or volatile directories: nothing beneath them is deleted
	err = filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		abs := "/" + filepath.ToSlash(rel)
		if under(abs, skip) {
			passed = append(passed, abs)
			return skipDir(de)
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if info.IsDir() && devOf(info) != dev {
			passed = append(passed, abs) // a mount point: another file system
			return filepath.SkipDir
		}
		c.res.Walked++
		c.seen[abs] = true
		if Volatile(abs, m.Volatile) {
			differs, err := c.volatileDiffers(ctx, abs, p, info)
			if err != nil {
				return err
			}
			if differs {
				c.res.Ignored++
			}
			if info.IsDir() {
				passed = append(passed, abs)
			}
			return skipDir(de)
		}
		e := m.Lookup(abs)
		switch {
		case info.IsDir():
			c.seenDir[abs] = e != nil && e.Mode.IsDir()
			if e == nil {
				c.report(kiln.DriftAdded, abs+"/")
			} else if MetaOf(info) != e.Meta() {
				c.report(kiln.DriftChanged, abs+"/")
			}
		case e == nil:
			c.report(kiln.DriftAdded, abs)
		default:
			differs, err := c.fileDiffers(p, info, e)
			if err != nil {
				return err
			}
			if differs {
				c.report(kiln.DriftChanged, abs)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("compare %s with the image: %w", root, err)
	}
	for i := range m.Entries {
		e := &m.Entries[i]
		if c.seen[e.Path] || under(e.Path, skip) || under(e.Path, passed) || !c.seenDir[path.Dir(e.Path)] {
			continue // present, not looked at, or beneath a path reported (or counted) already
		}
		if Volatile(e.Path, m.Volatile) {
			c.res.Ignored++
			continue
		}
		c.report(kiln.DriftDeleted, e.Path)
	}
	return c.res, nil
}

type comparer struct {
	m   *Manifest
	opt Options
	res *Result
	// seen are the paths walked; seenDir the directories walked that are
	// directories in the image too (where a missing path is reported).
	seen    map[string]bool
	seenDir map[string]bool
}

func (c *comparer) report(k kiln.DriftKind, p string) {
	c.res.Files = append(c.res.Files, kiln.DriftEntry{Kind: k, Path: p})
}

// fileDiffers compares a non-directory with its image entry: type, mode,
// owner, link target, size, then content unless its change time says it
// was not written since the image was made.
func (c *comparer) fileDiffers(p string, info fs.FileInfo, e *Entry) (bool, error) {
	if MetaOf(info) != e.Meta() {
		return true, nil
	}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(p)
		return err != nil || l != e.Link, nil //nolint:nilerr // an unreadable link counts as drift
	case info.Mode().IsRegular():
		if info.Size() != e.Size {
			return true, nil
		}
		if !c.opt.HashAll && c.untouched(info) {
			return false, nil
		}
		sum, err := HashFile(p)
		if err != nil {
			return false, err
		}
		c.res.Hashed++
		c.res.HashedBytes += info.Size()
		return sum != e.SHA256, nil
	}
	return false, nil
}

// untouched reports whether info's change time is not after the image's
// stamp: nothing wrote to the file or changed its metadata since.
func (c *comparer) untouched(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && c.m.Stamp > 0 && st.Ctim.Sec <= c.m.Stamp
}

// volatileDiffers reports whether the volatile path abs (and, for a
// directory, anything beneath it) differs from the image, by metadata and
// change time alone: volatile paths are counted, not reported, so their
// content is not hashed.
func (c *comparer) volatileDiffers(ctx context.Context, abs, p string, info fs.FileInfo) (bool, error) {
	e := c.m.Lookup(abs)
	if e == nil || c.metaOrTimeDiffers(p, info, e) {
		return true, nil
	}
	if !info.IsDir() {
		return false, nil
	}
	below := c.m.Under(abs)
	n := 0
	differs := false
	err := filepath.WalkDir(p, func(q string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if q == p {
			return nil
		}
		qi, err := os.Lstat(q)
		if err != nil {
			return err
		}
		n++
		e := c.m.Lookup(abs + "/" + filepath.ToSlash(strings.TrimPrefix(q, p+"/")))
		if e == nil || c.metaOrTimeDiffers(q, qi, e) {
			differs = true
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return differs || n != len(below), nil
}

func (c *comparer) metaOrTimeDiffers(p string, info fs.FileInfo, e *Entry) bool {
	if MetaOf(info) != e.Meta() || !c.untouched(info) {
		return true
	}
	switch {
	case info.Mode().IsRegular():
		return info.Size() != e.Size
	case info.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(p)
		return err != nil || l != e.Link
	}
	return false
}

// under reports whether p is one of prefixes or beneath one.
func under(p string, prefixes []string) bool {
	for _, v := range prefixes {
		if p == v || strings.HasPrefix(p, v+"/") {
			return true
		}
	}
	return false
}

func skipDir(de fs.DirEntry) error {
	if de.IsDir() {
		return filepath.SkipDir
	}
	return nil
}

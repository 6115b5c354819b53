package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
)

// overlayOpaque marks an opaque directory in an overlay layer; the other
// trusted.overlay.* attributes are overlayfs's own bookkeeping, which the
// layer format leaves out.
const overlayOpaque = "trusted.overlay.opaque"

// linkLayer puts layer l into the layer cache at dst as a copy of tree
// (a directory another part of kiln keeps, kiln.LayerTrees) made of hard
// links, instead of unpacking the blob: the copy is written in the layer
// format and must hash to l's diff ID, else it is thrown away and an
// error returned (the caller unpacks the blob instead). As with an
// unpack, the copy is made in a temporary directory beside dst and
// renamed into place only when complete and verified.
//
// The links share their inodes with tree: neither side ever writes to a
// cached tree (both are only overlay lower directories), and removing one
// side (kiln cache prune, PruneRootfs) leaves the other whole.
func (p *Platform) linkLayer(ctx context.Context, dst, tree string, l kiln.Layer) error {
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	base := filepath.Base(dst)
	tmp, err := os.MkdirTemp(parent, ".tmp-"+base[:min(12, len(base))]+"-"+fmt.Sprint(os.Getpid())+"-")
	if err != nil {
		return fmt.Errorf("layer cache: %w", err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	if err := linkTree(ctx, tree, tmp); err != nil {
		return fmt.Errorf("link layer %s from %s: %w", l.DiffID, tree, err)
	}
	got, err := treeDiffID(ctx, tmp)
	if err != nil {
		return fmt.Errorf("verify layer %s linked from %s: %w", l.DiffID, tree, err)
	}
	if got != l.DiffID {
		return kiln.Errorf(kiln.EINTERNAL, "the tree %s is not layer %s: written as a layer it hashes to %s", tree, l.DiffID, got)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return nil // another launch put it there first
		}
		return fmt.Errorf("layer cache: %w", err)
	}
	return nil
}

// treeDiffID is the diff ID of the tree under dir written as an overlay
// layer (layer.WriteTar, the writer of every layer kiln makes).
func treeDiffID(ctx context.Context, dir string) (string, error) {
	h := sha256.New()
	if err := layer.WriteTar(ctx, dir, h, layer.WriteOptions{Layer: true}); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// linkTree fills dst (an empty directory) with the tree under src as an
// unpack of its layer would: directories are made anew with src's mode,
// owner, times and extended attributes (overlayfs's own left out but the
// opaque mark); regular files, symlinks, FIFOs and whiteouts (0/0
// character devices) are hard links to src's; other device nodes and
// sockets, which the layer format leaves out, are left out. The root
// directory itself is not copied (a layer does not carry it). Nothing is
// followed: every name is made inside a directory made here.
func linkTree(ctx context.Context, src, dst string) error {
	type dirTimes struct {
		path string
		ts   []unix.Timespec
	}
	var dirs []dirTimes
	n := 0
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == src {
			return nil
		}
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := copyDir(p, target, &st); err != nil {
				return err
			}
			dirs = append(dirs, dirTimes{target, []unix.Timespec{st.Atim, st.Mtim}})
			return nil
		case unix.S_IFCHR:
			if st.Rdev != 0 {
				return nil // a device node: nspawn provides /dev
			}
		case unix.S_IFREG, unix.S_IFLNK, unix.S_IFIFO:
		default:
			return nil // block devices, sockets
		}
		if err := os.Link(p, target); err != nil {
			return fmt.Errorf("link %s: %w", rel, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Linking into a directory changed its times: set them last, deepest
	// first.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, dirs[i].ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set the times of %s: %w", dirs[i].path, err)
		}
	}
	return nil
}

// copyDir makes directory target like src (st): mode, owner, extended
// attributes.
func copyDir(src, target string, st *unix.Stat_t) error {
	if err := unix.Mkdir(target, 0o700); err != nil {
		return fmt.Errorf("make %s: %w", target, err)
	}
	if err := unix.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", target, err)
	}
	// After chown, which clears the set-id bits.
	if err := unix.Chmod(target, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", target, err)
	}
	names, err := listXattrs(src)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, "trusted.overlay.") && name != overlayOpaque {
			continue
		}
		val, err := getXattr(src, name)
		if err != nil {
			return err
		}
		if name == overlayOpaque && string(val) != "y" {
			continue
		}
		if err := unix.Lsetxattr(target, name, val, 0); err != nil {
			return fmt.Errorf("set %s on %s: %w", name, target, err)
		}
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	for {
		sz, err := unix.Llistxattr(p, nil)
		if errors.Is(err, unix.ENOTSUP) || sz == 0 {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list the extended attributes of %s: %w", p, err)
		}
		buf := make([]byte, sz)
		sz, err = unix.Llistxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list the extended attributes of %s: %w", p, err)
		}
		var names []string
		for _, n := range strings.Split(string(buf[:sz]), "\x00") {
			if n != "" {
				names = append(names, n)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	for {
		sz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", name, p, err)
		}
		buf := make([]byte, sz)
		sz, err = unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", name, p, err)
		}
		return buf[:sz], nil
	}
}

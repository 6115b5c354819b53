package bake

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The artifact format: a POSIX pax tar of a root filesystem, entries named
// relative to the root ("etc/passwd", directories ending in "/"), owners
// numeric only, permission and set-id bits, seconds-precision mtimes,
// extended attributes as SCHILY.xattr records. Device nodes, sockets and
// the root directory itself are left out (nspawn provides /dev).
//
// A layer is the same format for an overlay upper directory, with overlay
// whiteouts written the OCI way: a file "dir/.wh.NAME" removes NAME from
// the layers below, "dir/.wh..wh..opq" hides everything below in dir.
const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	overlayXattr   = "trusted.overlay."
	opaqueXattr    = "trusted.overlay.opaque"
	xattrRecord    = "SCHILY.xattr."
)

// WriteOptions changes how a directory is written as a tar.
type WriteOptions struct {
	// Layer says root is an overlay upper directory: whiteouts (0/0
	// character devices) and opaque directories become .wh. entries.
	Layer bool
	// ClampMtime, when set, replaces later modification times with it, so
	// that a bootstrap with SOURCE_DATE_EPOCH gives the same tar.
	ClampMtime time.Time
}

type inode struct{ dev, ino uint64 }

// WriteTar writes the tree under root to w in the artifact format.
func WriteTar(ctx context.Context, root string, w io.Writer, opts WriteOptions) error {
	tw := tar.NewWriter(w)
	links := map[inode]string{}
	n := 0
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if n++; n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		mtime := time.Unix(st.Mtim.Sec, 0)
		if !opts.ClampMtime.IsZero() && mtime.After(opts.ClampMtime) {
			mtime = opts.ClampMtime.Truncate(time.Second)
		}
		hdr := &tar.Header{
			Name:    filepath.ToSlash(rel),
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		opaque := false
		xattrs, err := readXattrs(p)
		if err != nil {
			return err
		}
		for k, v := range xattrs {
			if strings.HasPrefix(k, overlayXattr) {
				if opts.Layer && k == opaqueXattr && v == "y" {
					opaque = true
				}
				continue
			}
			if hdr.PAXRecords == nil {
				hdr.PAXRecords = map[string]string{}
			}
			hdr.PAXRecords[xattrRecord+k] = v
		}
		var content *os.File
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case unix.S_IFREG:
			hdr.Typeflag = tar.TypeReg
			id := inode{st.Dev, st.Ino}
			if first, ok := links[id]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			if st.Nlink > 1 {
				links[id] = hdr.Name
			}
			hdr.Size = st.Size
			f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			content = f
		case unix.S_IFLNK:
			hdr.Typeflag = tar.TypeSymlink
			if hdr.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFIFO:
			hdr.Typeflag = tar.TypeFifo
		case unix.S_IFCHR:
			if opts.Layer && st.Rdev == 0 {
				dir, base := path.Split(hdr.Name)
				return tw.WriteHeader(&tar.Header{Name: dir + whiteoutPrefix + base, Typeflag: tar.TypeReg, ModTime: mtime, Format: tar.FormatPAX})
			}
			return nil
		default: // block devices, sockets
			return nil
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("tar %s: %w", p, err)
		}
		if content != nil {
			if _, err := io.CopyBuffer(tw, io.LimitReader(content, hdr.Size), buf); err != nil {
				return fmt.Errorf("tar %s: %w", p, err)
			}
		}
		if opaque {
			return tw.WriteHeader(&tar.Header{Name: hdr.Name + whiteoutOpaque, Typeflag: tar.TypeReg, ModTime: mtime, Format: tar.FormatPAX})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

func readXattrs(p string) (map[string]string, error) {
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, nil
	}
	names := make([]byte, sz)
	sz, err = unix.Llistxattr(p, names)
	if err != nil {
		return nil, fmt.Errorf("list xattrs of %s: %w", p, err)
	}
	out := map[string]string{}
	for _, name := range strings.Split(strings.TrimRight(string(names[:sz]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		vsz, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, vsz)
		vsz, err = unix.Lgetxattr(p, name, val)
		if err != nil {
			continue
		}
		out[name] = string(val[:vsz])
	}
	return out, nil
}

// ExtractOptions changes how a tar is extracted.
type ExtractOptions struct {
	// Layer turns .wh. entries into overlay whiteouts, so that dir can be
	// stacked as an overlay lower directory.
	Layer bool
}

// ExtractTar extracts a tar in the artifact format into dir. It replaces
// what is in the way. Entries must stay inside dir; artifacts are trusted
// by digest, not sandboxed, so only extract artifacts kiln made or that a
// definition pinned by digest.
func ExtractTar(ctx context.Context, r io.Reader, dir string, opts ExtractOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	type dirTime struct {
		path  string
		mtime time.Time
	}
	var dirs []dirTime
	buf := make([]byte, 1<<20)
	for n := 0; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if name == "." {
			continue
		}
		if name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("tar entry %q leaves the root", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		parent, base := filepath.Split(target)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
		if opts.Layer && base == whiteoutOpaque {
			if err := unix.Lsetxattr(filepath.Clean(parent), opaqueXattr, []byte("y"), 0); err != nil {
				return fmt.Errorf("mark %s opaque: %w", parent, err)
			}
			continue
		}
		if opts.Layer && strings.HasPrefix(base, whiteoutPrefix) {
			wh := filepath.Join(parent, strings.TrimPrefix(base, whiteoutPrefix))
			if err := os.RemoveAll(wh); err != nil {
				return err
			}
			if err := unix.Mknod(wh, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", wh, err)
			}
			continue
		}
		mode := uint32(hdr.Mode & 0o7777)
		if hdr.Typeflag != tar.TypeDir {
			if err := removeExisting(target); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			fi, err := os.Lstat(target)
			if err == nil && !fi.IsDir() {
				if err := os.Remove(target); err != nil {
					return err
				}
				err = os.ErrNotExist
			}
			if err != nil {
				if err := unix.Mkdir(target, 0o700); err != nil {
					return fmt.Errorf("mkdir %s: %w", target, err)
				}
			}
			dirs = append(dirs, dirTime{target, hdr.ModTime})
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return err
			}
			if _, err := io.CopyBuffer(f, tr, buf); err != nil {
				f.Close()
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
		case tar.TypeLink:
			old := filepath.Join(dir, filepath.FromSlash(path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))))
			if err := os.Link(old, target); err != nil {
				return fmt.Errorf("hard link %s: %w", name, err)
			}
			continue // shares the first name's owner, mode and times
		case tar.TypeSymlink:
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		case tar.TypeFifo:
			if err := unix.Mkfifo(target, mode); err != nil {
				return err
			}
		case tar.TypeChar, tar.TypeBlock:
			kind := uint32(unix.S_IFCHR)
			if hdr.Typeflag == tar.TypeBlock {
				kind = unix.S_IFBLK
			}
			if err := unix.Mknod(target, kind|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				return err
			}
		default:
			continue
		}
		if err := unix.Lchown(target, hdr.Uid, hdr.Gid); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
		for k, v := range hdr.PAXRecords {
			if x, ok := strings.CutPrefix(k, xattrRecord); ok {
				if err := unix.Lsetxattr(target, x, []byte(v), 0); err != nil && hdr.Typeflag != tar.TypeSymlink {
					return fmt.Errorf("set %s on %s: %w", x, name, err)
				}
			}
		}
		if hdr.Typeflag == tar.TypeSymlink {
			ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
			_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
			continue
		}
		// chmod after chown: chown clears set-id bits.
		if err := unix.Chmod(target, mode); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
		if hdr.Typeflag != tar.TypeDir {
			_ = os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Chtimes(dirs[i].path, dirs[i].mtime, dirs[i].mtime)
	}
	return nil
}

func removeExisting(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return os.RemoveAll(p)
	}
	return os.Remove(p)
}

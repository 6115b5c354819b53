package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
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
	// Compression is how Put compresses the layer blob: Gzip (the
	// default, for "") or Zstd. WriteTar ignores it.
	Compression Compression
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
	// Apply applies .wh. entries to what dir holds already: a whiteout
	// removes its name, an opaque marker removes what the directory held
	// before this tar. Extracting a stack of layers bottom first with Apply
	// into one directory gives the stack's merged tree. Not with Layer.
	Apply bool
}

// ExtractTar extracts a tar in the artifact format into dir. It replaces
// what is in the way. The archive is hostile input (an origin artifact is
// anyone's tarball): every name, and every hard link's target, is resolved
// inside dir through an os.Root, so a symlink in the archive or already in
// dir may be created but never followed out of dir. An entry whose path
// goes through such a link fails the extraction with an EINVALID error that
// names the entry and the link; dir is then left half-written for the
// caller to remove.
func ExtractTar(ctx context.Context, r io.Reader, dir string, opts ExtractOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	if opts.Layer && opts.Apply {
		return errors.New("extract tar: Layer and Apply exclude each other")
	}
	x := &extraction{root: root}
	defer x.close()
	// written is what this tar wrote, which an opaque marker in Apply
	// mode keeps.
	written := map[string]bool{}
	tr := tar.NewReader(r)
	type dirTime struct {
		name  string
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
		if errors.Is(err, io.EOF) {
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
			return kiln.Errorf(kiln.EINVALID, "tar entry %q leaves the root; refusing", hdr.Name)
		}
		pname, base := path.Split(name)
		pname = path.Clean(pname)
		pdir, pfd, err := x.parent(name, pname)
		if err != nil {
			return err
		}
		if opts.Layer && base == whiteoutOpaque {
			if err := unix.Fsetxattr(pfd, opaqueXattr, []byte("y"), 0); err != nil {
				return fmt.Errorf("mark %s opaque: %w", pname, err)
			}
			continue
		}
		if opts.Apply && base == whiteoutOpaque {
			if err := x.clear(pdir, pname, written); err != nil {
				return fmt.Errorf("opaque directory %s: %w", pname, err)
			}
			continue
		}
		if (opts.Layer || opts.Apply) && strings.HasPrefix(base, whiteoutPrefix) {
			wh := strings.TrimPrefix(base, whiteoutPrefix)
			if wh == "" || wh == "." || wh == ".." {
				return kiln.Errorf(kiln.EINVALID, "tar entry %q is a whiteout of nothing; refusing", hdr.Name)
			}
			if err := x.remove(pdir, wh); err != nil {
				return fmt.Errorf("whiteout %s: %w", path.Join(pname, wh), err)
			}
			if opts.Apply {
				continue
			}
			if err := unix.Mknodat(pfd, wh, unix.S_IFCHR, 0); err != nil {
				return fmt.Errorf("whiteout %s: %w", path.Join(pname, wh), err)
			}
			continue
		}
		written[name] = true
		mode := uint32(hdr.Mode & 0o7777)
		if hdr.Typeflag != tar.TypeDir {
			if err := x.remove(pdir, base); err != nil {
				return fmt.Errorf("replace %s: %w", name, err)
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			fi, err := pdir.Lstat(base)
			if err == nil && !fi.IsDir() {
				if err := x.remove(pdir, base); err != nil {
					return fmt.Errorf("replace %s: %w", name, err)
				}
				err = os.ErrNotExist
			}
			if err != nil {
				if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
					return fmt.Errorf("mkdir %s: %w", name, err)
				}
			}
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		case tar.TypeReg:
			f, err := pdir.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
			if err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if _, err := io.CopyBuffer(f, tr, buf); err != nil {
				f.Close()
				return fmt.Errorf("extract %s: %w", name, err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("extract %s: %w", name, err)
			}
		case tar.TypeLink:
			old := path.Clean(strings.TrimPrefix(hdr.Linkname, "/"))
			if old == "." || old == ".." || strings.HasPrefix(old, "../") {
				return kiln.Errorf(kiln.EINVALID, "tar entry %s is a hard link to %q, which is outside the image; refusing", name, hdr.Linkname)
			}
			if err := root.Link(old, name); err != nil {
				if esc := escapes(root, old); esc != "" {
					return kiln.Errorf(kiln.EINVALID, "tar entry %s is a hard link to %s, whose path %s; refusing", name, old, esc)
				}
				return fmt.Errorf("hard link %s to %s: %w", name, old, err)
			}
			continue // shares the first name's owner, mode and times
		case tar.TypeSymlink:
			// Created, not resolved: an absolute target such as /run is
			// fine here; only a later entry written through it is refused.
			if err := pdir.Symlink(hdr.Linkname, base); err != nil {
				return fmt.Errorf("symlink %s: %w", name, err)
			}
		case tar.TypeFifo:
			if err := unix.Mknodat(pfd, base, unix.S_IFIFO|mode, 0); err != nil {
				return fmt.Errorf("mkfifo %s: %w", name, err)
			}
		case tar.TypeChar, tar.TypeBlock:
			kind := uint32(unix.S_IFCHR)
			if hdr.Typeflag == tar.TypeBlock {
				kind = unix.S_IFBLK
			}
			if err := unix.Mknodat(pfd, base, kind|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
				return fmt.Errorf("mknod %s: %w", name, err)
			}
		default:
			continue
		}
		// Everything below works on base in the already resolved parent
		// and does not follow a symlink at base.
		if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chown %s: %w", name, err)
		}
		// In the records' order, not the map's: a file system lists
		// attributes in the order they were set, and mkfs.ext4 -d (the
		// disk images) copies that order into the inode, so a random
		// order makes disk images that differ from build to build.
		for _, k := range slices.Sorted(maps.Keys(hdr.PAXRecords)) {
			if attr, ok := strings.CutPrefix(k, xattrRecord); ok {
				v := hdr.PAXRecords[k]
				if err := unix.Lsetxattr(fdPath(pfd, base), attr, []byte(v), 0); err != nil && hdr.Typeflag != tar.TypeSymlink {
					return fmt.Errorf("set %s on %s: %w", attr, name, err)
				}
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.ModTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if hdr.Typeflag == tar.TypeSymlink {
			_ = unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
			continue
		}
		// chmod after chown: chown clears set-id bits. base is what this
		// entry just created, never a symlink.
		if err := unix.Fchmodat(pfd, base, mode, 0); err != nil {
			return fmt.Errorf("chmod %s: %w", name, err)
		}
		if hdr.Typeflag != tar.TypeDir {
			_ = unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	// Directory times last, deepest first, since creating their children
	// changed them. A directory a later entry replaced is skipped.
	for i := len(dirs) - 1; i >= 0; i-- {
		if fi, err := root.Lstat(dirs[i].name); err == nil && fi.IsDir() {
			_ = root.Chtimes(dirs[i].name, dirs[i].mtime, dirs[i].mtime)
		}
	}
	return nil
}

// extraction is the state of one ExtractTar: the root every name resolves
// in and the parent directory of the last entry, kept open because tar
// entries come directory by directory.
type extraction struct {
	root  *os.Root
	pname string
	pdir  *os.Root
	pfile *os.File
	stale bool // something was removed since pdir was opened
}

// parent creates (as 0755 directories) and opens the parent directory
// pname of entry, resolved inside the root. It returns the directory as a
// Root and as a file descriptor for the calls os.Root does not have
// (mknodat, fchownat, xattrs).
func (x *extraction) parent(entry, pname string) (*os.Root, int, error) {
	if x.pdir != nil && x.pname == pname && !x.stale {
		return x.pdir, int(x.pfile.Fd()), nil
	}
	x.close()
	if pname != "." {
		if err := x.root.MkdirAll(pname, 0o755); err != nil {
			return nil, 0, x.refuse(entry, pname, err)
		}
	}
	d, err := x.root.OpenRoot(pname)
	if err != nil {
		return nil, 0, x.refuse(entry, pname, err)
	}
	f, err := d.Open(".")
	if err != nil {
		d.Close()
		return nil, 0, fmt.Errorf("open %s: %w", pname, err)
	}
	x.pname, x.pdir, x.pfile = pname, d, f
	return d, int(f.Fd()), nil
}

// remove removes base in dir, a directory with all it holds, if it is
// there. Since that may remove the kept parent or a symlink it was reached
// through, the kept parent is reopened for the next entry.
func (x *extraction) remove(dir *os.Root, base string) error {
	fi, err := dir.Lstat(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	x.stale = true
	if fi.IsDir() {
		return dir.RemoveAll(base)
	}
	return dir.Remove(base)
}

// clear removes from dir (the directory pname) every entry this tar has
// not written: what layers below an opaque directory put there.
func (x *extraction) clear(dir *os.Root, pname string, written map[string]bool) error {
	f, err := dir.Open(".")
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if written[path.Join(pname, n)] {
			continue
		}
		if err := x.remove(dir, n); err != nil {
			return err
		}
	}
	return nil
}

func (x *extraction) close() {
	if x.pdir != nil {
		x.pfile.Close()
		x.pdir.Close()
	}
	x.pname, x.pdir, x.pfile, x.stale = "", nil, nil, false
}

// refuse explains why the directory pname of entry could not be made: a
// symlink on the way that leads out of the image (or nowhere), or else err.
func (x *extraction) refuse(entry, pname string, err error) error {
	if esc := escapes(x.root, pname); esc != "" {
		return kiln.Errorf(kiln.EINVALID, "tar entry %s %s; refusing", entry, esc)
	}
	return fmt.Errorf("tar entry %s: make directory %s: %w", entry, pname, err)
}

// escapes finds the first symlink on the way to name (name included) that
// os.Root will not follow, and says what it is, or returns "".
func escapes(root *os.Root, name string) string {
	p := ""
	for c := range strings.SplitSeq(name, "/") {
		p = path.Join(p, c)
		fi, err := root.Lstat(p)
		if err != nil {
			return ""
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			continue
		}
		if _, err := root.Stat(p); err != nil {
			target, _ := root.Readlink(p)
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Sprintf("goes through symlink %s (to %s), which points at nothing in the image", p, target)
			}
			return fmt.Sprintf("goes through symlink %s (to %s), which leads outside the image", p, target)
		}
	}
	return ""
}

// fdPath names base in the directory open as fd without resolving the
// directory's path again: the kernel follows /proc/self/fd/N to the open
// directory itself, and the l-calls do not follow base.
func fdPath(fd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(fd) + "/" + base
}

package filedrift

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// ManifestVersion is the manifest format GuestMain reads; a guest that
// reads an older one says so.
const ManifestVersion = 1

// maxEntries bounds a manifest (a full Debian server has ~10⁵ paths) and
// maxLine one encoded entry.
const (
	maxEntries = 10_000_000
	maxLine    = 1 << 20
)

// Entry is one path of an image's root filesystem.
type Entry struct {
	Path   string      `json:"path"` // absolute, cleaned
	Mode   fs.FileMode `json:"mode"` // as os.Lstat reports it: type and permission bits
	UID    uint32      `json:"uid"`
	GID    uint32      `json:"gid"`
	Size   int64       `json:"size,omitempty"`   // regular files
	Link   string      `json:"link,omitempty"`   // symlinks' targets
	SHA256 string      `json:"sha256,omitempty"` // regular files' content, hex
}

// Meta is e's type, mode and owner.
func (e *Entry) Meta() Meta { return Meta{Mode: e.Mode, UID: e.UID, GID: e.GID} }

// Manifest describes an image's root filesystem for a comparison where
// the image's files cannot be read: inside a virtual machine.
type Manifest struct {
	Version int `json:"version"`
	// Stamp is the latest inode change time (ctime, Unix seconds) of the
	// image's files. A file inside the instance whose ctime is not later,
	// and whose type, mode, owner and size are the image's, has not been
	// written since the image was made (every write and every change of
	// metadata sets ctime to the current time, and no system call sets
	// it back), so its content is not hashed. Zero: every file is hashed.
	Stamp int64 `json:"stamp"`
	// Volatile are the image's own volatile patterns (definition.VolatileFile,
	// read from the image, not from the instance, which could widen them).
	Volatile []string `json:"volatile,omitempty"`
	Count    int      `json:"count"`
	Entries  []Entry  `json:"-"` // sorted by Path

	index map[string]int
}

// Sort orders the entries by path and indexes them; call it after
// changing Entries.
func (m *Manifest) Sort() {
	slices.SortFunc(m.Entries, func(a, b Entry) int { return strings.Compare(a.Path, b.Path) })
	m.Count = len(m.Entries)
	m.index = make(map[string]int, len(m.Entries))
	for i, e := range m.Entries {
		m.index[e.Path] = i
	}
}

// Lookup returns the entry of p, or nil.
func (m *Manifest) Lookup(p string) *Entry {
	if m.index == nil {
		m.Sort()
	}
	if i, ok := m.index[p]; ok {
		return &m.Entries[i]
	}
	return nil
}

// Under returns the entries strictly beneath directory dir, in path order.
func (m *Manifest) Under(dir string) []Entry {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	i, _ := slices.BinarySearchFunc(m.Entries, prefix, func(e Entry, t string) int { return strings.Compare(e.Path, t) })
	j := i
	for j < len(m.Entries) && strings.HasPrefix(m.Entries[j].Path, prefix) {
		j++
	}
	return m.Entries[i:j]
}

// FromTree describes the tree at root (its own root excluded): type,
// mode, owner, size, link targets and regular files' SHA-256, on one file
// system. Stamp and Volatile are left for the caller.
func FromTree(ctx context.Context, root string) (*Manifest, error) {
	m := &Manifest{Version: ManifestVersion}
	rootInfo, err := os.Lstat(root)
	if err != nil {
		return nil, err
	}
	dev := devOf(rootInfo)
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
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if info.IsDir() && devOf(info) != dev {
			return filepath.SkipDir
		}
		e, err := entryOf("/"+filepath.ToSlash(rel), p, info)
		if err != nil {
			return err
		}
		m.Entries = append(m.Entries, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("describe %s: %w", root, err)
	}
	m.Sort()
	return m, nil
}

func entryOf(abs, p string, info fs.FileInfo) (Entry, error) {
	meta := MetaOf(info)
	e := Entry{Path: abs, Mode: meta.Mode, UID: meta.UID, GID: meta.GID}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		l, err := os.Readlink(p)
		if err != nil {
			return e, err
		}
		e.Link = l
	case info.Mode().IsRegular():
		e.Size = info.Size()
		sum, err := HashFile(p)
		if err != nil {
			return e, err
		}
		e.SHA256 = sum
	}
	return e, nil
}

// HashFile is the hex SHA-256 of the regular file at p (not following a
// symlink in its last element).
func HashFile(p string) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NOATIME, 0)
	if errors.Is(err, syscall.EPERM) { // O_NOATIME on a file root does not own, without CAP_FOWNER
		f, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Dev
	}
	return 0
}

// Encode writes m gzip-compressed: a header line, then one JSON line per
// entry.
func (m *Manifest) Encode(w io.Writer) error {
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(zw, 64<<10)
	enc := json.NewEncoder(bw)
	m.Count = len(m.Entries)
	if err := enc.Encode(m); err != nil {
		return err
	}
	for i := range m.Entries {
		if err := enc.Encode(&m.Entries[i]); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

// Decode reads a manifest Encode wrote.
func Decode(r io.Reader) (*Manifest, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("read the image manifest: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	m := &Manifest{}
	if !sc.Scan() {
		return nil, fmt.Errorf("read the image manifest: no header: %w", errors.Join(sc.Err(), io.ErrUnexpectedEOF))
	}
	if err := json.Unmarshal(sc.Bytes(), m); err != nil {
		return nil, fmt.Errorf("read the image manifest: header: %w", err)
	}
	if m.Version != ManifestVersion {
		return nil, fmt.Errorf("the image manifest has format %d; this kiln reads format %d", m.Version, ManifestVersion)
	}
	if m.Count < 0 || m.Count > maxEntries {
		return nil, fmt.Errorf("the image manifest claims %d entries (at most %d)", m.Count, maxEntries)
	}
	m.Entries = make([]Entry, 0, m.Count)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("read the image manifest: entry %d: %w", len(m.Entries)+1, err)
		}
		if !strings.HasPrefix(e.Path, "/") || filepath.Clean(e.Path) != e.Path || e.Path == "/" {
			return nil, fmt.Errorf("read the image manifest: entry %d: path %q is not absolute and clean", len(m.Entries)+1, e.Path)
		}
		m.Entries = append(m.Entries, e)
		if len(m.Entries) > m.Count {
			return nil, fmt.Errorf("read the image manifest: more than the %d entries its header says", m.Count)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read the image manifest: %w", err)
	}
	if len(m.Entries) != m.Count {
		return nil, fmt.Errorf("read the image manifest: %d entries, its header says %d (truncated?)", len(m.Entries), m.Count)
	}
	m.Sort()
	return m, nil
}

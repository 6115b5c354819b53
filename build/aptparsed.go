package build

import (
	"bytes"
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
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// apt's parsed form of the mirror's lists (srcpkgcache.bin) costs an
// image line's first apt step ~0.7 s of CPU to build. A line's own parsed
// cache cannot be shared: the line's code writes it (see aptBinds). So
// kiln makes a shared one in a context only trusted code runs in, right
// after a bootstrap, and seeds a copy of it into a line's parsed/ when the
// line's lists are seeded from the shared lists:
//
//   - made: by apt-cache gencaches of the bootstrap's tree (mmdebstrap's
//     Debian packages, verified against the signed Release) on a throwaway
//     overlay of it, reading the shared lists (written by bootstraps only)
//     bind-mounted read-only, writing into a fresh directory. No step of
//     any image has run in that tree or written any of its inputs.
//   - stored: <dataDir>/cache/apt/srcpkgcache/<key>/ with srcpkgcache.bin
//     and record.json (its sha256, the list files it was made from with
//     their sizes and mtimes), renamed into place whole; key is the
//     Release digest, the image's apt version and architecture and its apt
//     sources, so a cache is only offered to an apt that reads the same.
//   - used: copied (never linked: the step may write its parsed dir) when
//     its sha256 and the line's lists (names, sizes, mtimes: what apt
//     checks) match the record. apt then checks it itself and rebuilds it
//     when anything else differs; whatever cannot be matched falls back
//     to apt parsing the lists, as before.

// sharedParsedDir holds the shared parsed caches under <dataDir>/cache/apt.
const sharedParsedDir = "srcpkgcache"

// parsedRecordName is the record beside a shared srcpkgcache.bin.
const parsedRecordName = "record.json"

// parsedRecord says what a shared srcpkgcache.bin was made from.
type parsedRecord struct {
	// Release is the digest of the mirror's Release file of the lists.
	Release string `json:"release"`
	// Apt is the apt version and architecture that made it.
	Apt string `json:"apt"`
	// Sources is the digest of the apt sources it was made for.
	Sources string `json:"sources"`
	// Digest is srcpkgcache.bin's sha256.
	Digest string `json:"digest"`
	// Lists are the mirror's list files it parsed, as apt validates them.
	Lists []listStamp `json:"lists"`
	// Layer is the cache key of the bootstrap layer whose apt made it.
	Layer string    `json:"layer"`
	Made  time.Time `json:"made"`
}

// listStamp is what apt checks of a list file against its parsed cache.
type listStamp struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	MtimeNS int64  `json:"mtime_ns"`
}

// errNoApt: the tree has no apt installed; nothing to parse the lists.
var errNoApt = errors.New("apt is not installed in the image")

// aptIdentity is what picks a shared parsed cache for an image tree: the
// installed apt (version and architecture) and the digest of its apt
// sources. Both are read inside the tree, symlinks resolved within it.
func aptIdentity(root string) (apt, sources string, err error) {
	status, err := readInRoot(root, "var/lib/dpkg/status", 64<<20)
	if err != nil {
		return "", "", err
	}
	err = debian.ScanParagraphs(bytes.NewReader(status), []string{"Package", "Status", "Version", "Architecture"}, func(p debian.Paragraph) error {
		if p["Package"] == "apt" && strings.HasSuffix(p["Status"], " installed") {
			apt = p["Version"] + " " + p["Architecture"]
		}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	if apt == "" {
		return "", "", errNoApt
	}
	h := sha256.New()
	if b, err := readInRoot(root, "etc/apt/sources.list", 1<<20); err == nil {
		fmt.Fprintf(h, "sources.list %d\n", len(b))
		h.Write(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	names, err := listInRoot(root, "etc/apt/sources.list.d")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", "", err
	}
	slices.Sort(names)
	for _, n := range names {
		b, err := readInRoot(root, "etc/apt/sources.list.d/"+n, 1<<20)
		if err != nil {
			return "", "", err
		}
		fmt.Fprintf(h, "%s %d\n", n, len(b))
		h.Write(b)
	}
	return apt, "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// parsedKey names the shared parsed cache for a Release, apt and sources.
func parsedKey(release, apt, sources string) string {
	sum := sha256.Sum256([]byte("srcpkgcache\n" + release + "\n" + apt + "\n" + sources + "\n"))
	return hex.EncodeToString(sum[:])
}

// sharedParsedPath is the directory of key's shared parsed cache.
func (r *run) sharedParsedPath(key string) string {
	return filepath.Join(r.cache.dir, "apt", sharedParsedDir, key)
}

// listPrefix is the prefix of the mirror's and suite's list files in an
// apt lists directory ("" when the Release URL is not a suite's).
func (r *run) listPrefix() string {
	name := r.releaseListName()
	base := strings.TrimSuffix(strings.TrimSuffix(name, "InRelease"), "Release")
	if base == name || !strings.HasSuffix(base, "_") {
		return ""
	}
	return base
}

// listStamps are the sizes and mtimes of the files in dir starting with
// prefix, by name.
func listStamps(dir, prefix string) ([]listStamp, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []listStamp
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, e.Name()), &st); err != nil {
			return nil, err
		}
		out = append(out, listStamp{Name: e.Name(), Size: st.Size, MtimeNS: st.Mtim.Nano()})
	}
	return out, nil
}

// warmSharedParsed makes the shared parsed cache for the bootstrap layer
// key in the background, beside the build's later steps, release step and
// registration; the build waits for it at its very end, before it
// unmounts its tmpfs (scratch.go). It never fails the build: a cache it
// could not make is only logged, and apt steps parse the lists themselves.
func (r *run) warmSharedParsed(ctx context.Context, key string) {
	if r.release == nil || r.debian == nil || r.listPrefix() == "" {
		return
	}
	// The tree may still be in the build's tmpfs (scratch.go).
	tree := r.treeOf(key)
	r.parsed.Add(1)
	go func() {
		defer r.parsed.Done()
		t := time.Now()
		made, err := r.makeSharedParsed(ctx, key, tree)
		switch {
		case err != nil:
			r.b.Logger.Warn("apt's shared parsed lists not made; image lines' first apt steps parse the lists themselves", "image", r.img.Name, "err", err)
			r.rep.logf("apt's shared parsed lists not made: %v", err)
		case made != "":
			r.rep.logf("apt's shared parsed lists made in %s for image lines' first apt steps (%s)", time.Since(t).Round(time.Millisecond), made)
		}
	}()
}

// makeSharedParsed runs apt-cache gencaches of the bootstrap layer key,
// whose tree is at tree, over the shared lists and stores the result. It
// returns where it stored it, or "" when nothing was to be done (the lists
// are not the Release's, or the cache is there already).
func (r *run) makeSharedParsed(ctx context.Context, key, tree string) (string, error) {
	shared, _ := r.aptDirs()
	if !r.releaseIn(shared) {
		return "", nil
	}
	apt, sources, err := aptIdentity(tree)
	if errors.Is(err, errNoApt) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the bootstrap's apt: %w", err)
	}
	pk := parsedKey(r.release.Digest, apt, sources)
	dst := r.sharedParsedPath(pk)
	before, err := listStamps(shared, r.listPrefix())
	if err != nil {
		return "", err
	}
	rec, err := r.loadSharedParsed(pk)
	if err == nil && !slices.Equal(rec.Lists, before) {
		err = errors.New("made from lists of other sizes or times than the shared lists now")
	}
	if err == nil {
		return "", nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		// Unusable (torn, altered, or of other lists): set aside under a
		// temporary name, removed, and made again.
		r.b.Logger.Warn("apt's shared parsed lists replaced", "dir", dst, "err", err)
		aside := filepath.Join(filepath.Dir(dst), tmpPrefix+"stale-"+r.w.id)
		if err := os.Rename(dst, aside); err == nil {
			_ = os.RemoveAll(aside)
		}
	}
	parent := filepath.Dir(dst)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix)
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)

	// A throwaway overlay: apt-cache takes dpkg's lock file in the tree.
	d := r.w.path("parsed")
	o := &overlayfs.Overlay{Lowers: []string{tree}, Upper: filepath.Join(d, "upper"), Work: filepath.Join(d, "work"), Target: filepath.Join(d, "merged")}
	if err := r.w.mount(o); err != nil {
		return "", err
	}
	var out bytes.Buffer
	sh := &bake.Shell{
		Root: o.Target, Machine: "kiln-parsed-" + r.w.id[len(r.w.id)-12:], ScriptDir: r.w.dir,
		Binds:    []string{tmp + ":" + aptParsedDir},
		ReadOnly: []string{shared + ":/var/lib/apt/lists"},
		Stdout:   &out, Stderr: &out,
	}
	// Niced: it overlaps the rest of the bake, which is on the critical path.
	err = sh.Run(ctx, []byte("nice -n 19 apt-cache -q "+aptCacheOpts+" gencaches\n"))
	if uerr := r.w.unmount(o.Target); err == nil {
		err = uerr
	}
	_ = os.RemoveAll(d)
	if err != nil {
		return "", fmt.Errorf("apt-cache gencaches in the bootstrap's tree: %w: %s", err, strings.TrimSpace(out.String()))
	}
	after, err := listStamps(shared, r.listPrefix())
	if err != nil {
		return "", err
	}
	if !slices.Equal(before, after) || !r.releaseIn(shared) {
		return "", errors.New("the shared lists changed while apt parsed them (a concurrent bootstrap); the next bootstrap makes the parsed lists")
	}
	bin := filepath.Join(tmp, "srcpkgcache.bin")
	digest, err := fileDigest(bin)
	if err != nil {
		return "", fmt.Errorf("apt-cache gencaches wrote no srcpkgcache.bin: %w", err)
	}
	made := parsedRecord{Release: r.release.Digest, Apt: apt, Sources: sources, Digest: digest, Lists: before, Layer: key, Made: r.b.Clock().UTC()}
	b, err := json.MarshalIndent(made, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, parsedRecordName), append(b, '\n'), 0o644); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	// A concurrent build may have stored the same key first: its copy
	// stays, this one is dropped.
	if err := os.Rename(tmp, dst); err != nil {
		if _, lerr := r.loadSharedParsed(pk); lerr == nil {
			return "", nil
		}
		return "", err
	}
	return dst, nil
}

// loadSharedParsed reads key's record and checks srcpkgcache.bin's
// sha256 against it (fs.ErrNotExist when there is none).
func (r *run) loadSharedParsed(key string) (*parsedRecord, error) {
	dir := r.sharedParsedPath(key)
	b, err := os.ReadFile(filepath.Join(dir, parsedRecordName))
	if err != nil {
		return nil, err
	}
	var rec parsedRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, parsedRecordName), err)
	}
	d, err := fileDigest(filepath.Join(dir, "srcpkgcache.bin"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: srcpkgcache.bin is missing", dir)
	}
	if err != nil {
		return nil, err
	}
	if d != rec.Digest {
		return nil, fmt.Errorf("%s: srcpkgcache.bin has sha256 %s, its record says %s", dir, d, rec.Digest)
	}
	return &rec, nil
}

// parsedSeed is a shared parsed cache copied into the line's parsed dir
// before an apt step, to tell afterwards whether apt kept it.
type parsedSeed struct {
	key   string
	mtime int64
	ino   uint64
}

// seedParsed copies the shared parsed cache matching the image tree root
// into the line's parsed dir when the line has none that fits its lists:
// its lists were just seeded from the shared lists, or its parsed dir is
// empty. It logs why when a shared cache exists but does not fit.
func (r *run) seedParsed(root string, listsSeeded bool) *parsedSeed {
	if r.release == nil || r.listPrefix() == "" {
		return nil
	}
	lists, _, parsed := r.lineAptDirs()
	bin := filepath.Join(parsed, "srcpkgcache.bin")
	if _, err := os.Lstat(bin); err == nil && !listsSeeded {
		return nil // the line's own, made from the lists it has
	}
	apt, sources, err := aptIdentity(root)
	if err != nil {
		r.rep.logf("apt: the shared parsed lists are not used (%v); apt parses the lists", err)
		return nil
	}
	key := parsedKey(r.release.Digest, apt, sources)
	rec, err := r.loadSharedParsed(key)
	if errors.Is(err, fs.ErrNotExist) {
		r.rep.logf("apt: no shared parsed lists for this Release, apt %s and these apt sources; apt parses the lists", apt)
		return nil
	}
	if err != nil {
		r.rep.logf("apt: the shared parsed lists are not used (%v); apt parses the lists", err)
		return nil
	}
	have, err := listStamps(lists, r.listPrefix())
	if err != nil || !slices.Equal(have, rec.Lists) {
		r.rep.logf("apt: the shared parsed lists are not used (the line's lists differ in size or time from those they were made from); apt parses the lists")
		return nil
	}
	src := filepath.Join(r.sharedParsedPath(key), "srcpkgcache.bin")
	if err := copyAtomic(src, bin); err != nil {
		r.rep.logf("apt: the shared parsed lists are not used (copy: %v); apt parses the lists", err)
		return nil
	}
	// The copy is checked again: the shared file may have changed since.
	if d, err := fileDigest(bin); err != nil || d != rec.Digest {
		_ = os.Remove(bin)
		r.rep.logf("apt: the shared parsed lists are not used (the copy does not match its record); apt parses the lists")
		return nil
	}
	now := time.Now()
	_ = os.Chtimes(filepath.Join(r.sharedParsedPath(key), parsedRecordName), now, now) // last use, for kiln cache prune
	var st unix.Stat_t
	if err := unix.Lstat(bin, &st); err != nil {
		return nil
	}
	r.rep.logf("apt: parsed lists seeded from the shared cache %s/%s (apt %s)", sharedParsedDir, key[:12], apt)
	return &parsedSeed{key: key, mtime: st.Mtim.Nano(), ino: st.Ino}
}

// seedKept reports, after the apt step, whether apt used the seeded
// parsed lists: it rewrites the file (a new inode) when it rebuilds them.
func (r *run) seedKept(s *parsedSeed) bool {
	_, _, parsed := r.lineAptDirs()
	var st unix.Stat_t
	if unix.Lstat(filepath.Join(parsed, "srcpkgcache.bin"), &st) != nil {
		return false
	}
	return st.Ino == s.ino && st.Mtim.Nano() == s.mtime
}

// readInRoot reads at most limit bytes of name inside the tree root.
func readInRoot(root, name string, limit int64) ([]byte, error) {
	f, err := openInRoot(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

// listInRoot lists the regular files of the directory name inside root.
func listInRoot(root, name string) ([]string, error) {
	f, err := openInRoot(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// openInRoot opens name inside the tree root, as finish and the bake
// package do: a symlink that leads out of the tree is an error (and the
// shared parsed lists are then not used), never followed to the host.
func openInRoot(root, name string) (*os.File, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return r.Open(name)
}

package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
)

// holdsFile is the file in a build's work directory listing the cache keys
// the build uses, one a line; it counts while the directory's lock is held.
const holdsFile = "holds"

// Kinds of CacheItem.
const (
	// CacheLayer is a step's layer: its record, its unpacked tree and its
	// tarball in the artifact store.
	CacheLayer = "layer"
	// CacheTree is an unpacked start or release layer: a copy of an
	// artifact (or of the last layer of one) that can be unpacked again.
	CacheTree = "tree"
	// CacheDeb is a downloaded Debian package shared by bootstraps and apt
	// steps (<dataDir>/cache/apt/archives).
	CacheDeb = "deb"
	// CacheParsed is apt's parsed package lists of one Debian archive
	// (<dataDir>/cache/apt/parsed/<archive>/srcpkgcache.bin), shared by
	// apt steps; apt rebuilds it in about a second when it is gone.
	CacheParsed = "parsed"
)

// shared reports whether the item is bind-mounted into every apt step
// rather than held by single builds: it is left alone while any build runs.
func (it *CacheItem) shared() bool { return it.Kind == CacheDeb || it.Kind == CacheParsed }

// CacheItem is one thing in the build cache that PruneCache can remove.
type CacheItem struct {
	Kind string `json:"kind"`
	// ID is the layer's cache key or the package's file name.
	ID string `json:"id"`
	// Name is the step that made the layer, or the package.
	Name string `json:"name,omitempty"`
	// Size is the bytes on disk: the unpacked tree, plus the layer tarball
	// when no registered version's artifact is that tarball.
	Size int64 `json:"size"`
	// LastUsed is when a build last used it (a cache hit, a bootstrap
	// reading the package), to the day for packages (relatime).
	LastUsed time.Time `json:"last_used"`
	// Held is set when a running build uses it: it is never removed.
	Held bool `json:"held,omitempty"`
	// Reason says why PruneCache removes (or, in a dry run, would remove) it.
	Reason string `json:"reason,omitempty"`

	tarball string   // layer tarball digest PruneCache may delete
	paths   []string // what goes to the trash
	partial bool     // a temporary file an interrupted bootstrap left
}

// CacheReport is the build cache's content (ListCache) or what PruneCache
// removed from it.
type CacheReport struct {
	// Items are every item (ListCache) or the removed ones (PruneCache).
	Items []CacheItem `json:"items"`
	// Size is their total size: what the cache takes, or what was freed.
	Size int64 `json:"size"`
	// Kept and KeptSize count what is left after a prune.
	Kept     int   `json:"kept"`
	KeptSize int64 `json:"kept_size"`
	// Held counts items running builds use.
	Held int `json:"held"`
	// RunningBuilds counts builds holding a work directory on this machine.
	RunningBuilds int `json:"running_builds"`
	// DryRun is set when PruneCache only said what it would remove.
	DryRun bool `json:"dry_run,omitempty"`
	// Notes say what was left alone and why.
	Notes []string `json:"notes,omitempty"`
}

// PruneOptions say what PruneCache removes. With neither OlderThan nor
// KeepSize it removes only packages no package list names any more.
type PruneOptions struct {
	// OlderThan removes items not used for this long.
	OlderThan time.Duration
	// KeepSize then removes the least recently used items until the cache
	// takes at most this many bytes (0: no limit).
	KeepSize int64
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Artifacts is where layer tarballs are deleted; nil keeps them.
	Artifacts kiln.ArtifactStore
	// Registry tells which artifacts registered versions reference: those
	// are never deleted. Without it no tarball is deleted.
	Registry kiln.Registry
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// ListCache returns what the build cache under dataDir holds, least
// recently used first.
func ListCache(ctx context.Context, dataDir string, arts kiln.ArtifactStore, reg kiln.Registry) (*CacheReport, error) {
	protected, err := versionArtifacts(ctx, reg)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(dataDir, "cache")
	held, builds, err := liveHolds(dataDir)
	if err != nil {
		return nil, err
	}
	items, err := scanCache(ctx, dir, arts, protected, held)
	if err != nil {
		return nil, err
	}
	rep := &CacheReport{Items: items, RunningBuilds: builds}
	for _, it := range items {
		rep.Size += it.Size
		if it.Held {
			rep.Held++
		}
	}
	if rep.Items == nil {
		rep.Items = []CacheItem{}
	}
	return rep, nil
}

// PruneCache removes from the build cache under dataDir the layers and
// packages not used for opts.OlderThan, packages no package list names any
// more, then the least recently used until it fits opts.KeepSize. It never
// removes what a running build holds, and never an artifact a registered
// version references (only layer tarballs the cache alone refers to).
//
// Removal is interrupt-safe: under the cache's exclusive lock each item is
// renamed into cache/trash (one rename per path, so a layer is either in
// place and whole or gone), then the trash is deleted; a prune interrupted
// while deleting leaves only trash, which the next prune deletes.
func PruneCache(ctx context.Context, dataDir string, opts PruneOptions) (*CacheReport, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	dir := filepath.Join(dataDir, "cache")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return &CacheReport{Items: []CacheItem{}, DryRun: opts.DryRun}, nil
	}
	protected, err := versionArtifacts(ctx, opts.Registry)
	if err != nil {
		return nil, err
	}
	rep := &CacheReport{Items: []CacheItem{}, DryRun: opts.DryRun}
	if !opts.DryRun {
		n, err := finishInterrupted(ctx, dir, opts.Artifacts, protected)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("finished %d interrupted prune(s)", n))
		}
	}

	// Scanning (sizes of every tree) is slow: do it without the lock, then
	// under the exclusive lock read the holds again and move out what is
	// still free. Builds record a hold under the shared lock before they
	// look at an entry, so the holds read under the exclusive lock are
	// complete until the chosen entries are moved out.
	held, builds, err := liveHolds(dataDir)
	if err != nil {
		return nil, err
	}
	scanned := time.Now()
	items, err := scanCache(ctx, dir, opts.Artifacts, protected, held)
	if err != nil {
		return nil, err
	}
	remove := choose(items, opts, now(), builds, rep)
	rep.RunningBuilds = builds
	if opts.DryRun {
		for i, it := range items {
			if remove[i] {
				rep.Items = append(rep.Items, it)
				rep.Size += it.Size
			} else {
				rep.Kept++
				rep.KeptSize += it.Size
			}
			if it.Held {
				rep.Held++
			}
		}
		return rep, nil
	}

	if afterScan != nil {
		afterScan()
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, "lock"), unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock the build cache: %w", err)
	}
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	held, builds, err = liveHolds(dataDir)
	if err != nil {
		return nil, err
	}
	rep.RunningBuilds = builds
	trash := filepath.Join(dir, "trash", newID())
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	gone := map[string]bool{}
	var tarballs []string
	var errs []error
	for i := range items {
		it := &items[i]
		if !remove[i] {
			continue
		}
		if held[it.ID] || (it.shared() && builds > 0) {
			// A build started since the scan and uses it.
			it.Held = !it.shared()
			delete(remove, i)
			continue
		}
		if !it.shared() && usedSince(dir, it.ID, scanned) {
			// A build used it (and ended) while the cache was scanned:
			// it is not the least recently used any more.
			delete(remove, i)
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			for j := i; j < len(items); j++ {
				delete(remove, j)
			}
			break
		}
		moved := true
		for j, p := range it.paths {
			err := os.Rename(p, filepath.Join(trash, fmt.Sprintf("%d-%d-%s", i, j, filepath.Base(p))))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("prune %s %s: %w", it.Kind, it.ID, err))
				moved = false
				break
			}
		}
		if !moved {
			delete(remove, i)
			continue
		}
		if !it.shared() {
			gone[it.ID] = true
		}
		if it.tarball != "" {
			tarballs = append(tarballs, it.tarball)
		}
		rep.Items = append(rep.Items, *it)
		rep.Size += it.Size
	}
	dropStacks(dir, gone, trash)
	dropMarkers(dir, items, trash)
	// The tarballs to delete are written down before the lock is let go:
	// a prune killed from here on leaves them listed in its trash, and the
	// next prune deletes them (finishInterrupted) instead of losing track.
	if len(tarballs) > 0 {
		if err := os.WriteFile(filepath.Join(trash, trashTarballs), []byte(strings.Join(tarballs, "\n")+"\n"), 0o600); err != nil {
			errs = append(errs, fmt.Errorf("record layer tarballs to delete: %w", err))
		}
	}
	unlock()
	locked = false

	// Tarballs are deleted once no remaining record names them. A build
	// that stores the same layer again meanwhile finds it missing later and
	// builds it again (cached() forgets a record whose tarball is gone).
	errs = append(errs, deleteTarballs(ctx, dir, opts.Artifacts, protected, tarballs)...)
	if err := os.RemoveAll(trash); err != nil {
		errs = append(errs, fmt.Errorf("empty %s: %w", trash, err))
	}
	for i, it := range items {
		if !remove[i] {
			rep.Kept++
			rep.KeptSize += it.Size
		}
		if it.Held {
			rep.Held++
		}
	}
	return rep, errors.Join(errs...)
}

// choose marks what to remove: unreferenced packages and items unused for
// opts.OlderThan, then the least recently used until opts.KeepSize fits.
func choose(items []CacheItem, opts PruneOptions, now time.Time, builds int, rep *CacheReport) map[int]bool {
	remove := map[int]bool{}
	debsBusy := false
	mark := func(i int, reason string) {
		it := &items[i]
		if it.Held || remove[i] {
			return
		}
		// Packages are shared through a bind mount with running apt
		// steps, which hold no individual package: leave them alone
		// while any build runs.
		if it.shared() && builds > 0 {
			debsBusy = true
			return
		}
		remove[i] = true
		it.Reason = reason
	}
	for i, it := range items {
		switch {
		case it.partial:
			mark(i, "left by an interrupted bootstrap")
		case it.Kind == CacheDeb && it.Name == "":
			mark(i, "no package list names this version any more")
		case opts.OlderThan > 0 && now.Sub(it.LastUsed) > opts.OlderThan:
			mark(i, "not used for "+days(now.Sub(it.LastUsed)))
		}
	}
	if opts.KeepSize > 0 {
		var size int64
		for i, it := range items {
			if !remove[i] {
				size += it.Size
			}
		}
		// items are least recently used first.
		for i := 0; i < len(items) && size > opts.KeepSize; i++ {
			was := remove[i]
			mark(i, fmt.Sprintf("least recently used, over --keep-size %s", FormatBytes(opts.KeepSize)))
			if remove[i] && !was {
				size -= items[i].Size
			}
		}
		if size > opts.KeepSize {
			rep.Notes = append(rep.Notes, fmt.Sprintf("still %s after pruning: the rest is held by running builds", FormatBytes(size)))
		}
	}
	for _, it := range items {
		if it.Held {
			rep.Notes = append(rep.Notes, fmt.Sprintf("kept %s %s: a running build holds it", it.Kind, short(it.ID)))
		}
	}
	if debsBusy {
		rep.Notes = append(rep.Notes, fmt.Sprintf("kept downloaded packages and parsed package lists: %d build(s) running; prune again when none runs", builds))
	}
	return remove
}

// scanCache lists the cache's layers, trees and packages, least recently
// used first.
func scanCache(ctx context.Context, dir string, arts kiln.ArtifactStore, protected, held map[string]bool) ([]CacheItem, error) {
	byKey := map[string]*CacheItem{}
	item := func(key string) *CacheItem {
		if it, ok := byKey[key]; ok {
			return it
		}
		it := &CacheItem{Kind: CacheTree, ID: key, Held: held[key]}
		byKey[key] = it
		return it
	}
	steps, err := readDirNames(filepath.Join(dir, "steps"))
	if err != nil {
		return nil, err
	}
	for _, n := range steps {
		key, ok := strings.CutSuffix(n, ".json")
		if !ok || strings.HasPrefix(n, tmpPrefix) {
			continue
		}
		p := filepath.Join(dir, "steps", n)
		it := item(key)
		it.Kind = CacheLayer
		it.paths = append(it.paths, p)
		if fi, err := os.Stat(p); err == nil {
			it.LastUsed = later(it.LastUsed, fi.ModTime())
		}
		var e cacheEntry
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &e) == nil {
			it.Name = e.Step
			if e.Layer.Digest != "" && !protected[e.Layer.Digest] {
				it.tarball = e.Layer.Digest
				if arts != nil {
					if a, err := arts.Stat(ctx, e.Layer.Digest); err == nil {
						it.Size += a.Size
					}
				}
			}
		}
	}
	layers, err := readDirNames(filepath.Join(dir, "layers"))
	if err != nil {
		return nil, err
	}
	for _, key := range layers {
		if strings.HasPrefix(key, tmpPrefix) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := filepath.Join(dir, "layers", key)
		it := item(key)
		it.paths = append([]string{p}, it.paths...) // the tree goes first
		if fi, err := os.Stat(p); err == nil {
			it.LastUsed = later(it.LastUsed, fi.ModTime())
		}
		it.Size += diskUsage(p)
		if it.Name == "" {
			it.Name = "unpacked start or release layer"
		}
	}
	used, err := readDirNames(filepath.Join(dir, "used"))
	if err != nil {
		return nil, err
	}
	for _, key := range used {
		p := filepath.Join(dir, "used", key)
		it, ok := byKey[key]
		if !ok {
			continue // an entry being written, or one already gone
		}
		if fi, err := os.Stat(p); err == nil {
			it.LastUsed = fi.ModTime() // the marker, when there is one, is the truth
		}
		it.paths = append(it.paths, p)
	}
	items := make([]CacheItem, 0, len(byKey))
	for _, it := range byKey {
		items = append(items, *it)
	}
	apt := filepath.Join(dir, "apt")
	debs, err := scanDebs(apt, "")
	if err != nil {
		return nil, err
	}
	items = append(items, debs...)
	// Parsed lists shared by archive (before image lines had their own).
	parsed := map[string]string{}
	if names, _ := readDirNames(filepath.Join(apt, "parsed")); len(names) > 0 {
		for _, n := range names {
			parsed[n] = filepath.Join(apt, "parsed", n)
		}
	}
	lines, _ := readDirNames(filepath.Join(apt, "lines"))
	for _, line := range lines {
		ld := filepath.Join(apt, "lines", line)
		debs, err := scanDebs(ld, line+"/")
		if err != nil {
			return nil, err
		}
		items = append(items, debs...)
		if _, err := os.Stat(filepath.Join(ld, "parsed")); err == nil {
			parsed[line] = filepath.Join(ld, "parsed")
		}
	}
	items = append(items, scanParsed(parsed)...)
	sort.SliceStable(items, func(i, j int) bool {
		if !items[i].LastUsed.Equal(items[j].LastUsed) {
			return items[i].LastUsed.Before(items[j].LastUsed)
		}
		return items[i].ID < items[j].ID
	})
	return items, nil
}

// scanDebs lists apt/archives/*.deb. A package is named (Name set) when a
// Packages list in apt/lists still lists that version; with no lists at all
// every package counts as named.
//
// aptDir is the shared apt cache or an image line's (apt/lines/<image>,
// whose apt steps have their own lists and packages); idPrefix ("<image>/")
// keeps their items apart.
func scanDebs(aptDir, idPrefix string) ([]CacheItem, error) {
	archives := filepath.Join(aptDir, "archives")
	names, err := readDirNames(archives)
	if err != nil {
		return nil, err
	}
	listed, haveLists := listedDebs(filepath.Join(aptDir, "lists"))
	var items []CacheItem
	for _, n := range names {
		partial := strings.HasPrefix(n, tmpPrefix)
		if !strings.HasSuffix(n, ".deb") && !partial {
			continue
		}
		p := filepath.Join(archives, n)
		var st unix.Stat_t
		if unix.Lstat(p, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		it := CacheItem{Kind: CacheDeb, ID: idPrefix + n, Size: st.Blocks * 512, paths: []string{p},
			LastUsed: later(time.Unix(st.Mtim.Unix()), time.Unix(st.Atim.Unix()))}
		if partial {
			// One younger than an hour may be being written now.
			if time.Since(it.LastUsed) > time.Hour {
				it.partial, it.Name = true, "(partial)"
				items = append(items, it)
			}
			continue
		}
		if !haveLists || listed[n] {
			it.Name, _, _ = strings.Cut(n, "_")
		}
		items = append(items, it)
	}
	return items, nil
}

// scanParsed lists apt's parsed package lists (id → directory): one per
// image line, and per Debian archive from before lines had their own; last
// use is when apt last rebuilt or (to the day) read them.
func scanParsed(dirs map[string]string) []CacheItem {
	var items []CacheItem
	for id, p := range dirs {
		it := CacheItem{Kind: CacheParsed, ID: id, Name: "apt's parsed package lists", Size: diskUsage(p), paths: []string{p}}
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(p, "srcpkgcache.bin"), &st) == nil {
			it.LastUsed = later(time.Unix(st.Mtim.Unix()), time.Unix(st.Atim.Unix()))
		} else if unix.Lstat(p, &st) == nil {
			it.LastUsed = time.Unix(st.Mtim.Unix())
		}
		items = append(items, it)
	}
	return items
}

// listedDebs returns the archive file names (NAME_VERSION_ARCH.deb, with
// ":" written "%3a" as apt does) of every package in the Packages lists.
func listedDebs(lists string) (map[string]bool, bool) {
	names, _ := readDirNames(lists)
	out := map[string]bool{}
	have := false
	for _, n := range names {
		if !strings.HasSuffix(n, "_Packages") {
			continue
		}
		f, err := os.Open(filepath.Join(lists, n))
		if err != nil {
			continue
		}
		have = true
		err = debian.ScanParagraphs(f, []string{"Package", "Version", "Architecture"}, func(p debian.Paragraph) error {
			if pkg, ver, arch := p["Package"], p["Version"], p["Architecture"]; pkg != "" && ver != "" && arch != "" {
				out[pkg+"_"+strings.ReplaceAll(ver, ":", "%3a")+"_"+arch+".deb"] = true
			}
			return nil
		})
		if err != nil {
			have = false // a list we could not read: do not judge by the lists
		}
		f.Close()
		if !have {
			return out, false
		}
	}
	return out, have
}

// liveHolds returns the keys held by running builds (build directories
// whose lock a live process holds) and how many builds run.
func liveHolds(dataDir string) (map[string]bool, int, error) {
	held := map[string]bool{}
	root := filepath.Join(dataDir, "build")
	ids, err := readDirNames(root)
	if err != nil {
		return nil, 0, err
	}
	builds := 0
	for _, id := range ids {
		if strings.HasPrefix(id, newWorkdirPrefix) {
			continue // being created: it holds nothing yet
		}
		dir := filepath.Join(root, id)
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			continue // not a build directory (image locks, a removed build)
		}
		busy := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB) != nil
		lock.Close()
		if !busy {
			continue // an interrupted build: Cleanup removes it
		}
		builds++
		b, err := os.ReadFile(filepath.Join(dir, holdsFile))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, 0, fmt.Errorf("read holds of build %s: %w", id, err)
		}
		for _, k := range strings.Fields(string(b)) {
			held[k] = true
		}
	}
	return held, builds, nil
}

// versionArtifacts returns the artifact digests of every registered
// version; nil registry: none.
func versionArtifacts(ctx context.Context, reg kiln.Registry) (map[string]bool, error) {
	out := map[string]bool{}
	if reg == nil {
		return out, nil
	}
	vs, _, err := reg.ListVersions(ctx, kiln.VersionFilter{})
	if err != nil {
		return nil, fmt.Errorf("list versions to keep their artifacts: %w", err)
	}
	for _, v := range vs {
		if a := v.Provenance.Artifact; a != nil {
			out[a.Digest] = true
		}
	}
	return out, nil
}

// dropStacks moves out the artifact stacks that name a removed layer.
func dropStacks(dir string, gone map[string]bool, trash string) {
	if len(gone) == 0 {
		return
	}
	names, _ := readDirNames(filepath.Join(dir, "artifacts"))
	for _, n := range names {
		p := filepath.Join(dir, "artifacts", n)
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var s stackEntry
		if json.Unmarshal(b, &s) != nil {
			continue
		}
		for _, k := range s.Layers {
			if gone[k] {
				_ = os.Rename(p, filepath.Join(trash, "stack-"+n))
				break
			}
		}
	}
}

// dropMarkers moves out last-use markers of entries that are gone (a
// layer dropped with a failed build's artifact, a record forgotten), once
// they are an hour old: a younger one may belong to an entry being written.
func dropMarkers(dir string, items []CacheItem, trash string) {
	known := map[string]bool{}
	for _, it := range items {
		known[it.ID] = true
	}
	names, _ := readDirNames(filepath.Join(dir, "used"))
	for _, n := range names {
		if known[n] {
			continue
		}
		p := filepath.Join(dir, "used", n)
		if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Hour {
			_ = os.Rename(p, filepath.Join(trash, "used-"+n))
		}
	}
}

// recordedTarballs returns the layer tarballs the step records name.
func recordedTarballs(dir string) map[string]bool {
	out := map[string]bool{}
	names, _ := readDirNames(filepath.Join(dir, "steps"))
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, "steps", n))
		if err != nil {
			continue
		}
		var e cacheEntry
		if json.Unmarshal(b, &e) == nil && e.Layer.Digest != "" {
			out[e.Layer.Digest] = true
		}
	}
	return out
}

// afterScan, when set (by tests), runs between PruneCache's scan and its
// exclusive lock: where a build that starts meanwhile must still be seen.
var afterScan func()

// usedSince reports whether key's last-use marker was touched after t.
func usedSince(dir, key string, t time.Time) bool {
	fi, err := os.Stat(filepath.Join(dir, "used", key))
	return err == nil && fi.ModTime().After(t)
}

// trashTarballs names, in a prune's trash directory, the layer tarballs it
// is to delete from the artifact store once its lock is let go.
const trashTarballs = "tarballs"

// deleteTarballs deletes layer tarballs from the artifact store unless a
// remaining cache record or a registered version still names them. A
// build that stores the same layer again meanwhile finds it missing later
// and builds it again (cached() forgets a record whose tarball is gone).
func deleteTarballs(ctx context.Context, dir string, arts kiln.ArtifactStore, protected map[string]bool, digests []string) []error {
	if arts == nil || len(digests) == 0 {
		return nil
	}
	var errs []error
	still := recordedTarballs(dir)
	for _, d := range digests {
		if d == "" || still[d] || protected[d] {
			continue
		}
		if err := arts.Delete(context.WithoutCancel(ctx), d); err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
			errs = append(errs, fmt.Errorf("delete layer tarball %s: %w", d, err))
		}
	}
	return errs
}

// finishInterrupted completes what interrupted prunes left in cache/trash:
// the layer tarballs they listed, then the trash itself. It runs under the
// cache's exclusive lock, so it never takes the trash of a prune that is
// still moving entries into it. It returns how many it finished.
func finishInterrupted(ctx context.Context, dir string, arts kiln.ArtifactStore, protected map[string]bool) (int, error) {
	names, _ := readDirNames(filepath.Join(dir, "trash"))
	if len(names) == 0 {
		return 0, nil
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, "lock"), unix.LOCK_EX)
	if err != nil {
		return 0, fmt.Errorf("lock the build cache: %w", err)
	}
	defer unlock()
	n := 0
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		t := filepath.Join(dir, "trash", name)
		if b, err := os.ReadFile(filepath.Join(t, trashTarballs)); err == nil {
			if errs := deleteTarballs(ctx, dir, arts, protected, strings.Split(strings.TrimSpace(string(b)), "\n")); len(errs) > 0 {
				continue // kept, with its list, for the next prune
			}
		}
		if os.RemoveAll(t) == nil {
			n++
		}
	}
	return n, nil
}

// lockFile takes a flock of kind how on path, waiting until ctx ends, and
// returns its release.
func lockFile(ctx context.Context, path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// diskUsage is the bytes the files under p take on disk, hard links once.
func diskUsage(p string) int64 {
	var total int64
	seen := map[uint64]bool{}
	// Unreadable entries are left out of the sum, not an error.
	_ = filepath.WalkDir(p, func(path string, _ fs.DirEntry, werr error) error {
		var st unix.Stat_t
		if werr != nil || unix.Lstat(path, &st) != nil {
			return nil //nolint:nilerr // counted as 0 bytes
		}
		if st.Nlink > 1 && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		total += st.Blocks * 512
		return nil
	})
	return total
}

func readDirNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	out := make([]string, 0, len(ents))
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func days(d time.Duration) string {
	if d < 48*time.Hour {
		return d.Round(time.Minute).String()
	}
	return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
}

func short(id string) string {
	if len(id) > 12 && !strings.HasSuffix(id, ".deb") {
		return id[:12]
	}
	return id
}

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// FormatBytes writes n in binary units: "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseBytes reads a size such as "10GiB", "500MB", "2G" or "1048576"
// (K/M/G/T are powers of 1024 with or without "iB"; "kB", "MB"… powers
// of 1000).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, suffix := t[:i], strings.TrimSpace(t[i:])
	var f float64
	if _, err := fmt.Sscanf(num, "%g", &f); err != nil || num == "" {
		return 0, fmt.Errorf("size %q: want a number with an optional unit (10GiB, 500MB)", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
	}[strings.ToLower(suffix)]
	if mult == 0 {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB, TiB, kB, MB, GB, TB)", s, suffix)
	}
	return int64(f * mult), nil
}

// ParseAge reads a duration such as "30d", "12h" or "1d12h" ("d" is 24 h).
func ParseAge(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var total time.Duration
	if d, rest, ok := strings.Cut(t, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != d {
			return 0, fmt.Errorf("age %q: want days and/or a Go duration (30d, 12h, 1d12h)", s)
		}
		total, t = time.Duration(n)*24*time.Hour, rest
	}
	if t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("age %q: want days and/or a Go duration (30d, 12h, 1d12h)", s)
		}
		total += d
	}
	return total, nil
}

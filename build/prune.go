package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/flock"
)

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
	unlock, err := lockFile(ctx, filepath.Join(dir, "lock"), flock.Exclusive)
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
		case it.partial && it.Kind == CacheParsed:
			mark(i, "left by an interrupted build")
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

// afterScan, when set (by tests), runs between PruneCache's scan and its
// exclusive lock: where a build that starts meanwhile must still be seen.
var afterScan func()

// usedSince reports whether key's last-use marker was touched after t.
func usedSince(dir, key string, t time.Time) bool {
	fi, err := os.Stat(filepath.Join(dir, "used", key))
	return err == nil && fi.ModTime().After(t)
}

func short(id string) string {
	if len(id) > 12 && !strings.HasSuffix(id, ".deb") {
		return id[:12]
	}
	return id
}

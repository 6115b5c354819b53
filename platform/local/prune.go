package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln/internal/flock"
)

// cacheLock serialises PruneRootfs against launches choosing a cached
// rootfs: launches take it shared, pruning exclusive.
func (p *Platform) cacheLock(how flock.Mode) (func(), error) {
	f, err := os.OpenFile(filepath.Join(p.dataDir, "rootfs.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("rootfs cache lock: %w", err)
	}
	if err := flock.Lock(context.Background(), f, how); err != nil {
		f.Close()
		return nil, fmt.Errorf("rootfs cache lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// PruneRootfs removes unpacked artifacts from the rootfs cache, and
// unpacked layers from the layer cache, that no instance in the data
// directory uses (an instance's changes only make sense over the lower dirs
// it was launched on, so stopped and crashed instances count until
// destroyed) and for which keep returns false. keep is asked about artifact
// digests for the rootfs cache and "sha256:" diff IDs for the layer cache;
// it may be nil. It returns the digests and diff IDs removed.
func (p *Platform) PruneRootfs(ctx context.Context, keep func(digest string) bool) ([]string, error) {
	unlock, err := p.cacheLock(flock.Exclusive)
	if err != nil {
		return nil, err
	}
	defer unlock()
	inUse := map[string]bool{}
	ents, err := os.ReadDir(filepath.Join(p.dataDir, "instances"))
	if err != nil {
		return nil, fmt.Errorf("prune rootfs cache: %w", err)
	}
	for _, e := range ents {
		if rec, err := readRecord(filepath.Join(p.dataDir, "instances", e.Name())); err == nil {
			inUse[rec.Lower] = true
			for _, l := range rec.Lowers {
				inUse[l] = true
			}
		}
	}
	var removed []string
	for _, sub := range []string{"rootfs", "layers"} {
		r, err := p.pruneDir(ctx, filepath.Join(p.dataDir, sub), inUse, keep)
		removed = append(removed, r...)
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// pruneDir removes the trees in dir (named by hex digest) not in use and
// not kept.
func (p *Platform) pruneDir(ctx context.Context, dir string, inUse map[string]bool, keep func(string) bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("prune rootfs cache: %w", err)
	}
	var removed []string
	for _, e := range ents {
		if ctx.Err() != nil {
			return removed, ctx.Err()
		}
		name := e.Name()
		path := filepath.Join(dir, name)
		digest := "sha256:" + name
		if strings.HasPrefix(name, ".") || inUse[path] || (keep != nil && keep(digest)) {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			return removed, fmt.Errorf("prune rootfs cache: %w", err)
		}
		p.log.Info("removed unpacked artifact", "digest", digest)
		removed = append(removed, digest)
	}
	return removed, nil
}

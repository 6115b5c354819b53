package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/kiln-project/kiln"
)

// Trees hands a platform the trees builds on this machine left of a
// version's layers in the step cache (kiln.LayerTrees), so that the test
// stage's instance is not unpacked from the artifact store again: the
// version's stack (artifacts/<hex>.json, recorded when it was registered)
// names the cache key of each layer, bottom first.
//
// A key is handed out for a layer only when the cache says it is that
// layer: its step entry records the layer's diff ID, or the key is the one
// a start layer unpacked by diff ID has, or it is the top of the stack and
// the key of this very artifact's release layer (chainKey of the key below
// and the artifact's digest). The platform still checks every tree against
// the diff ID before it trusts it.
//
// The keys handed out are held against kiln cache prune (PruneCache) as a
// build holds its own, in a hold directory <dataDir>/build/hold-…: written
// under the cache's shared lock before the trees are looked at, and
// counted while the directory's lock is held, until release.
type Trees struct {
	DataDir string
	Logger  *slog.Logger
}

var _ kiln.LayerTrees = (*Trees)(nil)

// LayerTrees implements kiln.LayerTrees.
func (t *Trees) LayerTrees(ctx context.Context, a kiln.Artifact, layers []kiln.Layer) ([]string, func(), error) {
	dirs := make([]string, len(layers))
	noop := func() {}
	if err := ctx.Err(); err != nil {
		return nil, noop, err
	}
	c := &cache{dir: filepath.Join(t.DataDir, "cache")}
	b, err := os.ReadFile(filepath.Join(c.dir, "artifacts", hexOf(a.Digest)+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return dirs, noop, nil // not built here, or its stack pruned
	}
	if err != nil {
		return nil, noop, fmt.Errorf("step cache: %w", err)
	}
	var s stackEntry
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, noop, fmt.Errorf("step cache: the stack of %s: %w", a.Digest, err)
	}
	if s.Artifact != a.Digest {
		return dirs, noop, nil
	}
	keys := c.layerKeys(s.Layers, a.Digest, layers)
	found := false
	for _, k := range keys {
		found = found || k != ""
	}
	if !found {
		return dirs, noop, nil
	}
	logger := t.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	w, err := newWorkdirNamed(t.DataDir, holdDirPrefix, logger)
	if err != nil {
		return nil, noop, err
	}
	release := func() {
		_ = os.RemoveAll(w.dir)
		_ = w.lock.Close()
	}
	c.holdIn(w)
	for i, k := range keys {
		// hasTree holds k first: a tree seen here is one prune leaves.
		if k != "" && c.hasTree(k) {
			dirs[i] = c.tree(k)
			c.used(k)
		}
	}
	if err := c.holdFailure(); err != nil {
		release()
		return nil, noop, err
	}
	return dirs, release, nil
}

// layerKeys pairs a stack's keys with the artifact's layers from the top
// (a start artifact applied into one tree takes one key for several
// layers) and keeps the keys the cache says are those layers; "" for the
// others.
func (c *cache) layerKeys(stack []string, digest string, layers []kiln.Layer) []string {
	out := make([]string, len(layers))
	for j := 0; j < len(stack) && j < len(layers); j++ {
		i, ki := len(layers)-1-j, len(stack)-1-j
		k, l := stack[ki], layers[i]
		switch {
		case l.DiffID == "":
		case k == chainKey("layer", l.DiffID):
			out[i] = k // a start layer unpacked by diff ID
		case j == 0 && ki > 0 && len(layers) > 1 && k == chainKey(stack[ki-1], digest):
			out[i] = k // the release layer of this artifact (finish)
		default:
			if e, ok := c.entry(k); ok && e.DiffID == l.DiffID {
				out[i] = k // a step's layer, or the bootstrap
			}
		}
	}
	return out
}

// entry reads key's step entry without holding or touching it.
func (c *cache) entry(key string) (*cacheEntry, bool) {
	b, err := os.ReadFile(filepath.Join(c.dir, "steps", key+".json"))
	if err != nil {
		return nil, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Key != key {
		return nil, false
	}
	return &e, true
}

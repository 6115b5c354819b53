package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/layer"
)

// tmpPrefix names cache entries being written; Cleanup removes stale ones.
const tmpPrefix = ".tmp-"

// cache is the step cache under <dataDir>/cache:
//
//	steps/<key>.json      which layer artifact a step key produced
//	layers/<key>/         that layer unpacked, ready to stack in an overlay
//	artifacts/<hex>.json  the layer keys an image artifact is made of
//	used/<key>            its mtime is the layer's last use (see prune.go)
//	lock                  flock: shared while a build records a hold,
//	                      exclusive while Prune chooses and moves out entries
//	trash/                entries being deleted by Prune
//
// A step's key is sha256 of the previous key and the step's digest, so a
// key covers every layer below it. The layer tarballs live in the artifact
// store; the unpacked trees are a local copy that can be deleted at any
// time (they are unpacked again from the store when needed).
//
// A build holds every key it asks about (holdIn): the key is written to
// <workdir>/holds under a shared lock on the cache's lock file before the
// build looks at the entry, so Prune, which reads the holds of every live
// build under the exclusive lock, never removes a layer a build uses.
type cache struct {
	dir string

	mu    sync.Mutex
	holds string // <workdir>/holds; empty: nothing is held
	held  map[string]bool
	// holdErr is the first failure to record a hold (holdFailure).
	holdErr error
}

type cacheEntry struct {
	Key  string `json:"key"`
	Step string `json:"step"`
	// Layer is the layer's blob in the artifact store.
	Layer kiln.Artifact `json:"layer"`
	// DiffID and MediaType describe the blob as an OCI layer; both are
	// empty in entries written before layers were compressed, whose blob
	// is a plain tar.
	DiffID    string    `json:"diff_id,omitempty"`
	MediaType string    `json:"media_type,omitempty"`
	Created   time.Time `json:"created"`
}

// ociLayer is the entry's blob as an OCI layer.
func (e *cacheEntry) ociLayer() kiln.Layer {
	if e.MediaType == "" {
		return layer.Tar(&e.Layer)
	}
	return kiln.Layer{Digest: e.Layer.Digest, DiffID: e.DiffID, Size: e.Layer.Size, MediaType: e.MediaType}
}

func entryOf(key, step string, l kiln.Layer, created time.Time) *cacheEntry {
	return &cacheEntry{Key: key, Step: step, Layer: kiln.Artifact{Ref: "local:" + l.Digest, Digest: l.Digest, Size: l.Size},
		DiffID: l.DiffID, MediaType: l.MediaType, Created: created}
}

type stackEntry struct {
	Artifact string   `json:"artifact"`
	Layers   []string `json:"layers"` // keys, bottom first
}

func newCache(dataDir string) (*cache, error) {
	c := &cache{dir: filepath.Join(dataDir, "cache")}
	for _, sub := range []string{"steps", "layers", "artifacts", "used"} {
		if err := os.MkdirAll(filepath.Join(c.dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("step cache: %w", err)
		}
	}
	return c, nil
}

// chainKey returns the key of a step on top of prev.
func chainKey(prev, stepDigest string) string {
	sum := sha256.Sum256([]byte(prev + "\n" + stepDigest))
	return hex.EncodeToString(sum[:])
}

// holdIn makes every key this cache hands out from now on held by the
// build working in w, for as long as w's lock is held.
func (c *cache) holdIn(w *workdir) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.holds, c.held = w.path(holdsFile), map[string]bool{}
}

// hold records key in the build's hold list. It is called before the entry
// is looked at, so an entry Prune is removing is either gone when looked at
// or not removed.
func (c *cache) hold(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.holds == "" || c.held[key] {
		return
	}
	fail := func(err error) {
		if c.holdErr == nil {
			c.holdErr = fmt.Errorf("record the cached layers this build uses (so kiln cache prune leaves them alone): %w; free disk space and build again", err)
		}
	}
	unlock, err := lockFile(context.Background(), filepath.Join(c.dir, "lock"), flock.Shared)
	if err != nil {
		fail(err)
		return
	}
	defer unlock()
	f, err := os.OpenFile(c.holds, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		fail(err)
		return
	}
	_, err = f.WriteString(key + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fail(err)
		return
	}
	c.held[key] = true
}

// holdFailure is the first failure to record a hold, nil when every key
// handed out is held. A build checks it before it mounts cached layers:
// one it could not hold, a prune may remove under it.
func (c *cache) holdFailure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holdErr
}

// used records now as key's last use.
func (c *cache) used(key string) {
	p := filepath.Join(c.dir, "used", key)
	now := time.Now()
	if err := os.Chtimes(p, now, now); errors.Is(err, fs.ErrNotExist) {
		if f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
			f.Close()
		}
	}
}

// tree returns the directory of key's unpacked layer, held by the build.
func (c *cache) tree(key string) string {
	c.hold(key)
	return filepath.Join(c.dir, "layers", key)
}

func (c *cache) hasTree(key string) bool {
	fi, err := os.Stat(c.tree(key))
	return err == nil && fi.IsDir()
}

func (c *cache) lookup(key string) (*cacheEntry, bool) {
	c.hold(key)
	b, err := os.ReadFile(filepath.Join(c.dir, "steps", key+".json"))
	if err != nil {
		return nil, false
	}
	var e cacheEntry
	if json.Unmarshal(b, &e) != nil || e.Layer.Digest == "" {
		return nil, false
	}
	c.used(key)
	return &e, true
}

// save records a step's layer and moves its unpacked tree into the cache.
// When another build cached the same key meanwhile, that one is kept.
func (c *cache) save(e *cacheEntry, tree string) error {
	if tree != "" {
		if err := os.Rename(tree, c.tree(e.Key)); err != nil {
			if !c.hasTree(e.Key) {
				return fmt.Errorf("step cache: keep layer: %w", err)
			}
			_ = os.RemoveAll(tree)
		}
	}
	c.used(e.Key)
	return c.writeJSON(filepath.Join(c.dir, "steps", e.Key+".json"), e)
}

func (c *cache) stack(digest string) ([]string, bool) {
	b, err := os.ReadFile(filepath.Join(c.dir, "artifacts", hexOf(digest)+".json"))
	if err != nil {
		return nil, false
	}
	var s stackEntry
	if json.Unmarshal(b, &s) != nil || len(s.Layers) == 0 {
		return nil, false
	}
	for _, k := range s.Layers {
		if !c.hasTree(k) {
			return nil, false
		}
	}
	for _, k := range s.Layers {
		c.used(k)
	}
	return s.Layers, true
}

func (c *cache) saveStack(digest string, layers []string) error {
	for _, k := range layers {
		c.used(k)
	}
	return c.writeJSON(filepath.Join(c.dir, "artifacts", hexOf(digest)+".json"), &stackEntry{Artifact: digest, Layers: layers})
}

// unpack extracts layers from the artifact store into the tree of key:
// one layer as an overlay lower directory (asLayer: whiteouts kept as
// overlay whiteouts), or a stack applied bottom first into one tree.
func (c *cache) unpack(ctx context.Context, store kiln.ArtifactStore, layers []kiln.Layer, key string, asLayer bool) error {
	if c.hasTree(key) {
		c.used(key)
		return nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.dir, "layers"), tmpPrefix)
	if err != nil {
		return err
	}
	for _, l := range layers {
		r, err := layer.Open(ctx, store, l)
		if err != nil {
			os.RemoveAll(tmp)
			return err
		}
		err = layer.ExtractTar(ctx, r, tmp, layer.ExtractOptions{Layer: asLayer, Apply: !asLayer})
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.RemoveAll(tmp)
			return fmt.Errorf("unpack %s: %w", l.Digest, err)
		}
	}
	if err := os.Rename(tmp, c.tree(key)); err != nil {
		os.RemoveAll(tmp)
		if !c.hasTree(key) {
			return err
		}
	}
	c.used(key)
	return nil
}

func (c *cache) writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(p), tmpPrefix)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), p); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// forget drops a step entry whose layer is gone from the artifact store.
func (c *cache) forget(key string) {
	err := os.Remove(filepath.Join(c.dir, "steps", key+".json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
}

func hexOf(digest string) string {
	if len(digest) > 7 && digest[:7] == "sha256:" {
		return digest[7:]
	}
	return digest
}

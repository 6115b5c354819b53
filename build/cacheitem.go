package build

import (
	"context"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln"
)

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
	// CacheParsed is apt's parsed package lists (srcpkgcache.bin) of an
	// image line (<dataDir>/cache/apt/lines/<image>/parsed), the shared
	// ones made after bootstraps (<dataDir>/cache/apt/srcpkgcache/<key>)
	// or, from before lines had their own, of one Debian archive
	// (<dataDir>/cache/apt/parsed/<archive>); apt rebuilds one in about a
	// second when it is gone.
	CacheParsed = "parsed"
)

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

// shared reports whether the item is bind-mounted into every apt step
// rather than held by single builds: it is left alone while any build runs.
func (it *CacheItem) shared() bool { return it.Kind == CacheDeb || it.Kind == CacheParsed }

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

package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/flock"
)

// holdsFile is the file in a build's work directory listing the cache keys
// the build uses, one a line; it counts while the directory's lock is held.
const holdsFile = "holds"

// liveHolds returns the keys held by running builds (build directories
// whose lock a live process holds) and by readers of the cache's trees
// (hold directories, Trees), and how many builds run.
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
		busy := flock.TryLock(lock, flock.Exclusive) != nil
		lock.Close()
		if !busy {
			continue // an interrupted build: Cleanup removes it
		}
		if !strings.HasPrefix(id, holdDirPrefix) {
			builds++ // a hold directory is a reader's (Trees), not a build
		}
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
			// A layered artifact's layers are the cache's step blobs: a
			// version's keeps them however old the step entry.
			for _, l := range a.Layers {
				out[l.Digest] = true
			}
		}
		for _, a := range v.Provenance.Artifacts {
			out[a.Digest] = true
		}
	}
	return out, nil
}

// lockFile takes a flock of mode m on path, waiting until it is free or
// ctx ends, and returns its release.
func lockFile(ctx context.Context, path string, m flock.Mode) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock.Lock(ctx, f, m); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

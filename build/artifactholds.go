package build

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
)

// ArtifactHolds says what of the artifact store the build side of this
// machine still needs, for `kiln artifact gc`: the layer tarballs the step
// cache refers to (kiln cache prune removes those with their layers), and
// when the oldest build still running started (its artifacts are not
// registered yet, so nothing younger may be collected).
type ArtifactHolds struct {
	// Cache are the digests of layer tarballs step-cache entries name.
	Cache map[string]bool
	// Running counts builds running on this machine.
	Running int
	// OldestStart is when the oldest of them started (zero: none runs).
	OldestStart time.Time
}

// HeldArtifacts reads the step cache and the running builds under dataDir.
func HeldArtifacts(dataDir string) (*ArtifactHolds, error) {
	h := &ArtifactHolds{Cache: map[string]bool{}}
	steps := filepath.Join(dataDir, "cache", "steps")
	names, err := readDirNames(steps)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".json") {
			continue
		}
		var e cacheEntry
		if b, err := os.ReadFile(filepath.Join(steps, n)); err == nil && json.Unmarshal(b, &e) == nil && e.Layer.Digest != "" {
			h.Cache[e.Layer.Digest] = true
		}
	}
	root := filepath.Join(dataDir, "build")
	ids, err := readDirNames(root)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		dir := filepath.Join(root, id)
		if strings.HasPrefix(id, newWorkdirPrefix) {
			// Being created: it runs from now on.
			h.note(dir)
			continue
		}
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err != nil {
			continue
		}
		busy := flock.TryLock(lock, flock.Exclusive) != nil
		lock.Close()
		if busy {
			h.note(dir)
		}
	}
	return h, nil
}

func (h *ArtifactHolds) note(dir string) {
	fi, err := os.Stat(dir)
	t := time.Now()
	if err == nil {
		t = fi.ModTime()
	}
	if lf, err := os.Stat(filepath.Join(dir, "lock")); err == nil && lf.ModTime().Before(t) {
		t = lf.ModTime()
	}
	h.Running++
	if h.OldestStart.IsZero() || t.Before(h.OldestStart) {
		h.OldestStart = t
	}
}

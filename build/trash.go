package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/flock"
)

// trashTarballs names, in a prune's trash directory, the layer tarballs it
// is to delete from the artifact store once its lock is let go.
const trashTarballs = "tarballs"

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
	unlock, err := lockFile(ctx, filepath.Join(dir, "lock"), flock.Exclusive)
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

func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

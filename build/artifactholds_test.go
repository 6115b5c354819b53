package build

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/flock"
)

// HeldArtifacts names the layer tarballs the step cache refers to and
// counts the builds whose lock a live process holds (not those whose
// lock is free: interrupted builds Cleanup removes).
func TestHeldArtifacts(t *testing.T) {
	dir := t.TempDir()
	d := "sha256:" + strings.Repeat("ab", 32)
	steps := filepath.Join(dir, "cache", "steps")
	if err := os.MkdirAll(steps, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(cacheEntry{Key: "k", Step: "apt", Layer: kiln.Artifact{Digest: d}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(steps, "k.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"running", "interrupted"} {
		if err := os.MkdirAll(filepath.Join(dir, "build", id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "build", id, "lock"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(dir, "build", "running", "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := flock.TryLock(lock, flock.Exclusive); err != nil {
		t.Fatal(err)
	}
	h, err := HeldArtifacts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Cache[d] || len(h.Cache) != 1 {
		t.Errorf("cache holds %v; want %s", h.Cache, d)
	}
	if h.Running != 1 || h.OldestStart.IsZero() {
		t.Errorf("running %d since %v; want the one locked build", h.Running, h.OldestStart)
	}
}

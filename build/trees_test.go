package build

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// treesCache makes a step cache holding the stack of one version built
// here (bootstrap, one step, release layer) and returns it with the keys
// and the version's artifact and layers.
func treesCache(t *testing.T, data string) (*cache, []string, kiln.Artifact, []kiln.Layer) {
	t.Helper()
	c, err := newCache(data)
	if err != nil {
		t.Fatal(err)
	}
	art := kiln.Artifact{Digest: "sha256:" + strings.Repeat("a", 64)}
	layers := []kiln.Layer{
		{Digest: "sha256:" + strings.Repeat("1", 64), DiffID: "sha256:" + strings.Repeat("b", 64)},
		{Digest: "sha256:" + strings.Repeat("2", 64), DiffID: "sha256:" + strings.Repeat("c", 64)},
		{Digest: "sha256:" + strings.Repeat("3", 64), DiffID: "sha256:" + strings.Repeat("d", 64)},
	}
	boot := strings.Repeat("0", 64)
	step := chainKey(boot, "step")
	final := chainKey(step, art.Digest)
	now := time.Now().UTC()
	for i, k := range []string{boot, step} {
		if err := c.save(entryOf(k, "step", layers[i], now), ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{boot, step, final} {
		if err := os.MkdirAll(filepath.Join(c.tree(k), "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.saveStack(art.Digest, []string{boot, step, final}); err != nil {
		t.Fatal(err)
	}
	return c, []string{boot, step, final}, art, layers
}

func holdDirs(t *testing.T, data string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(data, "build", holdDirPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestTreesHandsOutHeldTrees: the trees of a version built here are
// handed out for its layers, held against kiln cache prune (which counts
// no running build for them) until released.
func TestTreesHandsOutHeldTrees(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	c, keys, art, layers := treesCache(t, data)
	trees := &Trees{DataDir: data}

	dirs, release, err := trees.LayerTrees(ctx, art, layers)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{c.tree(keys[0]), c.tree(keys[1]), c.tree(keys[2])}
	if !slices.Equal(dirs, want) {
		t.Fatalf("dirs = %v, want %v", dirs, want)
	}
	held, builds, err := liveHolds(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !held[k] {
			t.Errorf("key %s is not held while handed out", k)
		}
	}
	if builds != 0 {
		t.Errorf("a hold counts as %d running build(s), want 0", builds)
	}
	// A prune down to nothing leaves the handed-out trees.
	if _, err := PruneCache(ctx, data, PruneOptions{KeepSize: 1}); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("prune removed a held tree: %v", err)
		}
	}

	release()
	if hd := holdDirs(t, data); len(hd) != 0 {
		t.Errorf("hold directories left after release: %v", hd)
	}
	if held, _, _ := liveHolds(data); len(held) != 0 {
		t.Errorf("held after release: %v", held)
	}
	if _, err := PruneCache(ctx, data, PruneOptions{KeepSize: 1}); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s survived a prune once released", d)
		}
	}
	// Pruned: nothing to hand out, and nothing held for it.
	dirs, release, err = trees.LayerTrees(ctx, art, layers)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if slices.ContainsFunc(dirs, func(d string) bool { return d != "" }) {
		t.Errorf("after the prune: %v, want none", dirs)
	}
}

// TestTreesOnlyTheLayers: a key is handed out only where the cache says
// it is that layer.
func TestTreesOnlyTheLayers(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	c, keys, art, layers := treesCache(t, data)
	trees := &Trees{DataDir: data}
	lookup := func(a kiln.Artifact, ls []kiln.Layer) []string {
		t.Helper()
		dirs, release, err := trees.LayerTrees(ctx, a, ls)
		if err != nil {
			t.Fatal(err)
		}
		release()
		return dirs
	}

	// The step's entry records another diff ID: not this layer.
	other := slices.Clone(layers)
	other[1].DiffID = "sha256:" + strings.Repeat("e", 64)
	if got := lookup(art, other); !slices.Equal(got, []string{c.tree(keys[0]), "", c.tree(keys[2])}) {
		t.Errorf("another step layer: %v", got)
	}

	// Another artifact with the same stack file content is not this one.
	if got := lookup(kiln.Artifact{Digest: "sha256:" + strings.Repeat("f", 64)}, layers); slices.ContainsFunc(got, func(d string) bool { return d != "" }) {
		t.Errorf("an artifact not built here: %v", got)
	}

	// A squashed version (one layer of its whole root) is not its
	// release layer's tree.
	if err := c.saveStack(art.Digest, keys); err != nil {
		t.Fatal(err)
	}
	if got := lookup(art, layers[2:]); !slices.Equal(got, []string{""}) {
		t.Errorf("squashed: %v", got)
	}

	// A reheat on a start artifact applied into one tree: its own layers
	// pair from the top, the start layers have no tree of their own.
	start := chainKey("artifact", "sha256:"+strings.Repeat("9", 64))
	step := keys[1]
	reheat := kiln.Artifact{Digest: "sha256:" + strings.Repeat("8", 64)}
	final := chainKey(step, reheat.Digest)
	for _, k := range []string{start, final} {
		if err := os.MkdirAll(c.tree(k), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.saveStack(reheat.Digest, []string{start, step, final}); err != nil {
		t.Fatal(err)
	}
	rl := []kiln.Layer{{DiffID: "sha256:" + strings.Repeat("7", 64)}, {DiffID: "sha256:" + strings.Repeat("6", 64)}, layers[1], {DiffID: "sha256:" + strings.Repeat("5", 64)}}
	if got := lookup(reheat, rl); !slices.Equal(got, []string{"", "", c.tree(step), c.tree(final)}) {
		t.Errorf("reheat on an applied start: %v", got)
	}

	// A start layer unpacked by diff ID is that layer.
	byDiff := chainKey("layer", rl[0].DiffID)
	if err := os.MkdirAll(c.tree(byDiff), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.saveStack(reheat.Digest, []string{byDiff, step, final}); err != nil {
		t.Fatal(err)
	}
	if got := lookup(reheat, rl[:1:1]); !slices.Equal(got, []string{""}) {
		t.Errorf("one layer against three keys: %v", got) // pairs the top key only
	}
	if got := lookup(reheat, []kiln.Layer{rl[0], layers[1], rl[3]}); !slices.Equal(got, []string{c.tree(byDiff), c.tree(step), c.tree(final)}) {
		t.Errorf("start layer by diff ID: %v", got)
	}

	if hd := holdDirs(t, data); len(hd) != 0 {
		t.Errorf("hold directories left: %v", hd)
	}
}

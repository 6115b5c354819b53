package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/store"
)

// TestPruneCache fills a data directory through the cache's own API (layer
// tarballs in a real artifact store, a real SQLite registry, a live build
// holding a layer through its work directory lock) and prunes it.
func TestPruneCache(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	arts, err := artifact.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := store.Open(ctx, "", data, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	c, err := newCache(data)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	layer := func(name, content string) (string, kiln.Artifact) {
		a, err := arts.Put(ctx, strings.NewReader(content))
		if err != nil {
			t.Fatal(err)
		}
		key := chainKey("test", name)
		tree := filepath.Join(data, "tmp-"+name)
		if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, "etc", name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := c.save(&cacheEntry{Key: key, Step: "shell " + name, Layer: *a, Created: old}, tree); err != nil {
			t.Fatal(err)
		}
		return key, *a
	}
	age := func(key string) {
		for _, p := range []string{filepath.Join(c.dir, "used", key), filepath.Join(c.dir, "steps", key+".json"), c.tree(key)} {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	stale, staleTar := layer("stale", "stale layer")
	heldKey, heldTar := layer("held", "held layer")
	fresh, _ := layer("fresh", "fresh layer")
	inVersion, versionTar := layer("version", "a layer that is also a version's artifact")
	age(stale)
	age(heldKey)
	age(inVersion)
	if err := c.saveStack("sha256:feed", []string{stale, fresh}); err != nil {
		t.Fatal(err)
	}
	age(stale) // saveStack used it

	if err := reg.CreateImage(ctx, &kiln.Image{Name: "pruned"}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.CreateVersion(ctx, &kiln.NewVersion{Image: "pruned", Provenance: kiln.Provenance{Artifact: &versionTar}}); err != nil {
		t.Fatal(err)
	}

	// Packages: one the lists name, one they no longer name.
	apt := filepath.Join(c.dir, "apt")
	for _, d := range []string{"lists", "archives"} {
		if err := os.MkdirAll(filepath.Join(apt, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	list := "Package: hello\nVersion: 2.10-3\nArchitecture: amd64\n\nPackage: tzdata\nVersion: 1:2024a-0+deb12u1\nArchitecture: all\n"
	must(t, os.WriteFile(filepath.Join(apt, "lists", "mirror_dists_bookworm_main_binary-amd64_Packages"), []byte(list), 0o644))
	for _, n := range []string{"hello_2.10-3_amd64.deb", "hello_2.10-2_amd64.deb", "tzdata_1%3a2024a-0+deb12u1_all.deb"} {
		must(t, os.WriteFile(filepath.Join(apt, "archives", n), []byte(n), 0o644))
	}

	// apt's parsed lists of one archive, last rebuilt long ago.
	parsed := filepath.Join(apt, "parsed", "0123456789abcdef")
	must(t, os.MkdirAll(parsed, 0o755))
	must(t, os.WriteFile(filepath.Join(parsed, "srcpkgcache.bin"), []byte("parsed lists"), 0o644))
	must(t, os.Chtimes(filepath.Join(parsed, "srcpkgcache.bin"), old, old))

	// An image line's own packages and parsed lists (its apt steps' cache).
	line := filepath.Join(apt, "lines", "appserver")
	must(t, os.MkdirAll(filepath.Join(line, "archives"), 0o755))
	must(t, os.MkdirAll(filepath.Join(line, "parsed"), 0o755))
	must(t, os.WriteFile(filepath.Join(line, "archives", "nginx_1.22_amd64.deb"), []byte("nginx"), 0o644))
	must(t, os.WriteFile(filepath.Join(line, "parsed", "srcpkgcache.bin"), []byte("parsed"), 0o644))

	// Shared parsed lists a bootstrap made, last used long ago, and the
	// directory an interrupted build left while making one.
	sharedParsed := filepath.Join(apt, sharedParsedDir, strings.Repeat("ab", 32))
	must(t, os.MkdirAll(sharedParsed, 0o755))
	must(t, os.WriteFile(filepath.Join(sharedParsed, "srcpkgcache.bin"), []byte("parsed"), 0o644))
	must(t, os.WriteFile(filepath.Join(sharedParsed, parsedRecordName), []byte("{}"), 0o644))
	must(t, os.Chtimes(filepath.Join(sharedParsed, parsedRecordName), old, old))
	must(t, os.Chtimes(sharedParsed, old, old))
	leftParsed := filepath.Join(apt, sharedParsedDir, tmpPrefix+"123")
	must(t, os.MkdirAll(leftParsed, 0o755))
	must(t, os.Chtimes(leftParsed, old, old))

	// A running build holds heldKey: its work directory is locked and
	// the cache recorded the key in its holds.
	w, err := newWorkdir(data, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	bc, err := newCache(data)
	if err != nil {
		t.Fatal(err)
	}
	bc.holdIn(w)
	if _, ok := bc.lookup(heldKey); !ok {
		t.Fatal("held layer not found")
	}
	age(heldKey) // the hold counts, not the age

	list0, err := ListCache(ctx, data, arts, reg)
	if err != nil {
		t.Fatal(err)
	}
	if list0.RunningBuilds != 1 || list0.Held != 1 || len(list0.Items) != 12 {
		t.Fatalf("list: %d builds, %d held, %d items %+v; want 1, 1, 12", list0.RunningBuilds, list0.Held, len(list0.Items), list0.Items)
	}

	opts := PruneOptions{OlderThan: 30 * 24 * time.Hour, Artifacts: arts, Registry: reg}
	dry := opts
	dry.DryRun = true
	rep, err := PruneCache(ctx, data, dry)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rep.Items); got != ids2(stale, inVersion) {
		t.Errorf("dry run would remove %s, want %s", got, ids2(stale, inVersion))
	}
	if !c.hasTree(stale) {
		t.Fatal("dry run removed a layer")
	}

	rep, err = PruneCache(ctx, data, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Packages and parsed lists stay while a build runs (apt steps share
	// them), though the parsed lists are older than --older-than.
	if got := ids(rep.Items); got != ids2(stale, inVersion) {
		t.Errorf("removed %s, want %s", got, ids2(stale, inVersion))
	}
	if rep.Size <= 0 || !strings.Contains(strings.Join(rep.Notes, "\n"), "build(s) running") {
		t.Errorf("report: freed %d, notes %q", rep.Size, rep.Notes)
	}
	if _, ok := c.lookup(stale); ok || c.hasTree(stale) {
		t.Error("stale layer still cached")
	}
	if _, err := arts.Stat(ctx, staleTar.Digest); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("stale layer tarball: %v, want deleted", err)
	}
	if _, err := arts.Stat(ctx, versionTar.Digest); err != nil {
		t.Errorf("a registered version's artifact was deleted: %v", err)
	}
	if _, ok := c.stack("sha256:feed"); ok {
		t.Error("the stack naming a pruned layer is still there")
	}
	if _, ok := c.lookup(heldKey); !ok || !c.hasTree(heldKey) {
		t.Error("held layer removed")
	}
	if _, err := arts.Stat(ctx, heldTar.Digest); err != nil {
		t.Errorf("held layer's tarball: %v", err)
	}
	if _, ok := c.lookup(fresh); !ok {
		t.Error("recently used layer removed")
	}
	if ents, _ := os.ReadDir(filepath.Join(c.dir, "trash")); len(ents) != 0 {
		t.Errorf("trash left: %v", ents)
	}

	// The build ends: its hold goes with its lock. Packages can go now;
	// a size limit removes the least recently used first.
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	opts.KeepSize = 1
	rep, err = PruneCache(ctx, data, opts)
	if err != nil {
		t.Fatal(err)
	}
	got := ids(rep.Items)
	if _, err := os.Stat(parsed); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("parsed lists: %v, want removed once no build runs", err)
	}
	if _, err := os.Stat(filepath.Join(line, "archives", "nginx_1.22_amd64.deb")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("image line's package: %v, want removed", err)
	}
	for _, want := range []string{heldKey[:12], fresh[:12], "hello_2.10-2_amd64.deb", "0123456789ab", "appserver", "appserver/ng"} {
		if !strings.Contains(got, want) {
			t.Errorf("removed %s, want %s among them", got, want)
		}
	}
	for _, it := range rep.Items {
		if it.ID == "hello_2.10-2_amd64.deb" && !strings.Contains(it.Reason, "no package list") {
			t.Errorf("removed %+v: want the reason that the lists no longer name it", it)
		}
		if it.Kind == CacheParsed && strings.HasPrefix(it.ID, tmpPrefix) && it.Reason != "left by an interrupted build" {
			t.Errorf("removed %+v: want the reason that an interrupted build left it", it)
		}
		if it.Kind == CacheParsed && it.ID == filepath.Base(sharedParsed) && !strings.HasPrefix(it.Reason, "not used for") {
			t.Errorf("removed %+v: want the reason that no build used it for --older-than", it)
		}
	}
	for _, p := range []string{sharedParsed, leftParsed} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("shared parsed lists %s: %v, want removed once no build runs", p, err)
		}
	}
	if rep.Kept != 0 || rep.KeptSize != 0 {
		t.Errorf("kept %d (%d bytes), want nothing under --keep-size 1", rep.Kept, rep.KeptSize)
	}
	after, err := ListCache(ctx, data, arts, reg)
	if err != nil || len(after.Items) != 0 {
		t.Fatalf("after pruning everything: %+v, %v", after, err)
	}
}

// An interrupted prune leaves only trash, which the next one deletes.
func TestPruneFinishesInterruptedPrune(t *testing.T) {
	data := t.TempDir()
	c, err := newCache(data)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	arts, err := artifact.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	// A prune killed after moving a layer out under the lock, before it
	// deleted the layer's tarball: the tarball is listed in its trash.
	orphan, err := arts.Put(ctx, strings.NewReader("a pruned layer's tarball"))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := arts.Put(ctx, strings.NewReader("a tarball a cache record still names"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.save(&cacheEntry{Key: chainKey("test", "kept"), Step: "kept", Layer: *kept, Created: time.Now()}, ""))
	trash := filepath.Join(c.dir, "trash", "20260101T000000-abc")
	half := filepath.Join(trash, "0-0-key")
	must(t, os.MkdirAll(filepath.Join(half, "etc"), 0o755))
	must(t, os.WriteFile(filepath.Join(trash, trashTarballs), []byte(orphan.Digest+"\n"+kept.Digest+"\n"), 0o600))

	rep, err := PruneCache(ctx, data, PruneOptions{Artifacts: arts})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half); !os.IsNotExist(err) || len(rep.Notes) == 0 {
		t.Errorf("interrupted prune's trash: %v, notes %q", err, rep.Notes)
	}
	if _, err := arts.Stat(ctx, orphan.Digest); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("the interrupted prune's tarball: %v, want deleted", err)
	}
	if _, err := arts.Stat(ctx, kept.Digest); err != nil {
		t.Errorf("a tarball a record names was deleted: %v", err)
	}
}

func TestParseSizes(t *testing.T) {
	for in, want := range map[string]int64{"10GiB": 10 << 30, "500MB": 500e6, "2G": 2 << 30, "1048576": 1 << 20, "1.5 KiB": 1536} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, want := range map[string]time.Duration{"30d": 30 * 24 * time.Hour, "12h": 12 * time.Hour, "1d12h": 36 * time.Hour, "0": 0} {
		if got, err := ParseAge(in); err != nil || got != want {
			t.Errorf("ParseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"10 parsecs", "x"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"-3d", "d", "3 weeks"} {
		if _, err := ParseAge(bad); err == nil {
			t.Errorf("ParseAge(%q) accepted", bad)
		}
	}
}

func ids(items []CacheItem) string {
	var out []string
	for _, it := range items {
		out = append(out, short(it.ID))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func ids2(keys ...string) string {
	var out []string
	for _, k := range keys {
		out = append(out, short(k))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestPruneWithRealBuilds builds an image, prunes one of its layers while a
// (second) build holds another, and builds again: the pruned layer is built
// again, the held one comes from the cache. It also checks that the bootstrap
// filled the shared package cache and that the image holds none of it.
func TestPruneWithRealBuilds(t *testing.T) {
	b := needBuilder(t)
	ctx := context.Background()
	dir := t.TempDir()
	est := estate(t, dir, map[string]string{"prune.kiln.hcl": `image "pruned" {
` + debianBlock + `
  shell {
    inline = ["echo a > /etc/prune-a"]
  }
  shell {
    inline = ["echo b > /etc/prune-b"]
  }
}
`})
	res := build(t, b, est, "pruned", Options{})
	if res.Version == nil {
		t.Fatal("no version built")
	}
	debs, _ := filepath.Glob(filepath.Join(shared.dataDir, "cache", "apt", "archives", "*.deb"))
	if len(debs) < 50 {
		t.Errorf("package cache holds %d .deb files after a bootstrap, want the minbase set", len(debs))
	}
	if got := artifactNames(t, res.Version, "var/cache/apt/archives/"); len(got) != 0 {
		t.Errorf("the image holds cached packages: %v", got)
	}

	c, err := newCache(shared.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{} // step name → key
	names, _ := readDirNames(filepath.Join(c.dir, "steps"))
	for _, n := range names {
		key := strings.TrimSuffix(n, ".json")
		if e, ok := c.lookup(key); ok && strings.Contains(e.Step, "prune.kiln.hcl") {
			keys[e.Step] = key
		}
	}
	if len(keys) != 2 {
		t.Fatalf("cache entries of the image's shell steps: %v", keys)
	}
	var stepNames []string
	for name := range keys {
		stepNames = append(stepNames, name)
	}
	sort.Strings(stepNames) // "shell (prune.kiln.hcl:10)" before ":13)"
	keyA, keyB := keys[stepNames[0]], keys[stepNames[1]]

	// Another build runs and holds layer B.
	w, err := newWorkdir(shared.dataDir, b.Logger)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := newCache(shared.dataDir)
	other.holdIn(w)
	if _, ok := other.lookup(keyB); !ok {
		t.Fatal("layer B not cached")
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	for _, k := range []string{keyA, keyB} {
		must(t, os.Chtimes(filepath.Join(c.dir, "used", k), old, old))
	}
	rep, err := PruneCache(ctx, shared.dataDir, PruneOptions{OlderThan: 30 * 24 * time.Hour, Artifacts: b.Artifacts, Registry: b.Registry})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(rep.Items); got != short(keyA) {
		t.Errorf("pruned %s, want only layer A %s", got, short(keyA))
	}
	if _, err := b.Artifacts.Stat(ctx, res.Version.Provenance.Artifact.Digest); err != nil {
		t.Errorf("the version's artifact: %v", err)
	}
	must(t, w.close())

	res = build(t, b, est, "pruned", Options{Force: true})
	var cached []bool
	for _, s := range res.Steps {
		cached = append(cached, s.Cached)
	}
	want := []bool{true, false, true, false} // bootstrap, A (pruned), B (held), release
	if fmt.Sprint(cached) != fmt.Sprint(want) {
		t.Errorf("steps cached %v, want %v", cached, want)
	}
	if got := readArtifact(t, res.Version, "etc/prune-a", "etc/prune-b"); got["etc/prune-a"] != "a\n" || got["etc/prune-b"] != "b\n" {
		t.Errorf("rebuilt image: %q", got)
	}
}

// artifactNames lists the entries under prefix in a version's artifact,
// the prefix directory itself left out.
func artifactNames(t *testing.T, v *kiln.Version, prefix string) []string {
	t.Helper()
	hdrs, _ := mergedArtifact(t, v)
	var out []string
	for n := range hdrs {
		if strings.HasPrefix(n, prefix) && n != prefix && strings.HasSuffix(n, ".deb") {
			out = append(out, n)
		}
	}
	return out
}

// A build that starts (or uses a layer and ends) between prune's scan and
// its exclusive lock must still keep what it uses: prune reads the holds
// and the last-use markers again under the lock.
func TestPruneSeesBuildsStartedDuringTheScan(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	arts, err := artifact.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	c, err := newCache(data)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour)
	layer := func(name string) string {
		a, err := arts.Put(ctx, strings.NewReader(name))
		if err != nil {
			t.Fatal(err)
		}
		key := chainKey("test", name)
		tree := filepath.Join(data, "tmp-"+name)
		must(t, os.MkdirAll(tree, 0o755))
		must(t, c.save(&cacheEntry{Key: key, Step: name, Layer: *a, Created: old}, tree))
		for _, p := range []string{filepath.Join(c.dir, "used", key), filepath.Join(c.dir, "steps", key+".json"), c.tree(key)} {
			must(t, os.Chtimes(p, old, old))
		}
		return key
	}
	heldLater, usedLater, stale := layer("held-later"), layer("used-later"), layer("stale")

	var w *workdir
	afterScan = func() {
		// A build starts and holds one layer; another build used (and
		// let go of) a second one.
		w, err = newWorkdir(data, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		bc, err := newCache(data)
		if err != nil {
			t.Fatal(err)
		}
		bc.holdIn(w)
		if _, ok := bc.lookup(heldLater); !ok {
			t.Fatal("layer not found")
		}
		c.used(usedLater)
	}
	defer func() { afterScan = nil }()
	rep, err := PruneCache(ctx, data, PruneOptions{OlderThan: 30 * 24 * time.Hour, Artifacts: arts})
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	if got := ids(rep.Items); got != ids2(stale) {
		t.Errorf("removed %s, want only %s", got, ids2(stale))
	}
	for _, k := range []string{heldLater, usedLater} {
		if !c.hasTree(k) {
			t.Errorf("layer %s removed though a build used it during the scan", short(k))
		}
	}
}

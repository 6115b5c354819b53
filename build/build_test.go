package build

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/sign"
)

// mergedArtifact returns the entries of a version's merged root
// filesystem (its layers applied bottom first, whiteouts removing what
// they name): the tar header of each path, and the content of regular
// files.
func mergedArtifact(t *testing.T, v *kiln.Version) (map[string]*tar.Header, map[string]string) {
	t.Helper()
	ctx := context.Background()
	ls, err := layer.Layers(ctx, shared.arts, v.Provenance.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	hdrs, bodies := map[string]*tar.Header{}, map[string]string{}
	drop := func(p string, keep map[string]bool) {
		for n := range hdrs {
			if (n == p || strings.HasPrefix(n, p+"/")) && !keep[n] {
				delete(hdrs, n)
				delete(bodies, n)
			}
		}
	}
	for _, l := range ls {
		r, err := layer.Open(ctx, shared.arts, l)
		if err != nil {
			t.Fatal(err)
		}
		written := map[string]bool{}
		tr := tar.NewReader(r)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			name := path.Clean(strings.TrimPrefix(h.Name, "./"))
			dir, base := path.Split(name)
			switch {
			case base == ".wh..wh..opq":
				for n := range hdrs {
					if strings.HasPrefix(n, path.Clean(dir)+"/") && !written[n] {
						delete(hdrs, n)
						delete(bodies, n)
					}
				}
				continue
			case strings.HasPrefix(base, ".wh."):
				drop(path.Join(dir, strings.TrimPrefix(base, ".wh.")), nil)
				continue
			}
			if h.Typeflag == tar.TypeDir {
				name += "/"
			}
			hdrs[name], written[name] = h, true
			if h.Typeflag == tar.TypeReg {
				b, _ := io.ReadAll(tr)
				bodies[name] = string(b)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
	}
	return hdrs, bodies
}

// readArtifact returns the named files' content from a version's artifact.
func readArtifact(t *testing.T, v *kiln.Version, names ...string) map[string]string {
	t.Helper()
	_, bodies := mergedArtifact(t, v)
	out := map[string]string{}
	for _, n := range names {
		if b, ok := bodies[n]; ok {
			out[n] = b
		}
	}
	return out
}

func TestFreshBakeCacheAndUpToDate(t *testing.T) {
	b := needBuilder(t)
	dir := t.TempDir()
	files := map[string]string{
		"files/motd": "welcome to kiln\n",
		"basic.kiln.hcl": `image "basic" {
  method = "fresh"
  version = "1.0.0"
  volatile = ["/var/lib/app"]
` + debianBlock + `
  file {
    source      = "files/motd"
    destination = "/etc/motd"
    mode        = "0640"
    owner       = "root:adm"
  }
  shell {
    inline = ["echo one > /etc/step-one", "echo role=test >> /etc/kiln-release"]
  }
  shell {
    inline = ["echo two > /etc/step-two"]
  }
}
`,
	}
	est := estate(t, dir, files)
	// NoCache: a test before may have made the same bootstrap; this one
	// checks what a bootstrap leaves.
	res := build(t, b, est, "basic", Options{NoCache: true})
	v := res.Version
	if v == nil || v.Status != kiln.StatusCandidate || v.Number != 1 {
		t.Fatalf("first build: version %+v, want basic-1 candidate", v)
	}
	p := v.Provenance
	if p.Method != kiln.MethodFresh || p.Artifact == nil || !hasPackage(v, "base-files") || !hasPackage(v, "dpkg") {
		t.Fatalf("provenance: method %s, artifact %v, %d packages", p.Method, p.Artifact, len(p.Packages))
	}
	kinds := map[kiln.SourceKind]int{}
	for _, s := range p.Sources {
		kinds[s.Kind]++
		if s.Kind == kiln.SourceOrigin && (!strings.HasPrefix(s.Ref, "bookworm@") || s.Digest == "") {
			t.Errorf("origin source %+v: want bookworm@mirror with the Release digest", s)
		}
	}
	if kinds[kiln.SourceDefinition] != 1 || kinds[kiln.SourceConfig] != 1 || kinds[kiln.SourceOrigin] != 1 {
		t.Errorf("sources %+v: want one definition, one config file, one origin", p.Sources)
	}
	got := readArtifact(t, v, "etc/kiln-release", "etc/hostname", "etc/resolv.conf", "etc/machine-id", "etc/motd", "etc/step-two", "etc/kiln/volatile")
	if vol, err := definition.ParseVolatile([]byte(got["etc/kiln/volatile"])); err != nil || len(vol) != 1 || vol[0] != "/var/lib/app" {
		t.Errorf("/etc/kiln/volatile = %q (%v), want the image's volatile pattern /var/lib/app", got["etc/kiln/volatile"], err)
	}
	rel := got["etc/kiln-release"]
	for _, want := range []string{"image=basic\n", "version=1\n", "name=basic-1\n", "definition_digest=" + est.Images["basic"].Digest, "source_date_epoch=", "role=test\n", "semver=1.0.0-"} {
		if !strings.Contains(rel, want) {
			t.Errorf("/etc/kiln-release lacks %q:\n%s", want, rel)
		}
	}
	host, _ := os.ReadFile("/etc/hostname")
	if got["etc/hostname"] != "localhost\n" || (len(host) > 0 && got["etc/hostname"] == string(host)) {
		t.Errorf("/etc/hostname = %q, want localhost (never the host's)", got["etc/hostname"])
	}
	if strings.Contains(got["etc/resolv.conf"], "nameserver") {
		t.Errorf("/etc/resolv.conf leaks the host's resolver: %q", got["etc/resolv.conf"])
	}
	if got["etc/machine-id"] != "" || got["etc/motd"] != "welcome to kiln\n" || got["etc/step-two"] != "two\n" {
		t.Errorf("artifact files: %q", got)
	}
	log, err := b.Registry.Attachment(context.Background(), v.Ref(), LogAttachment)
	if err != nil || !strings.Contains(string(log.Data), "mmdebstrap") {
		t.Errorf("build log attachment: %v", err)
	}
	// Both SBOMs are kept, signed, naming every package of the manifest
	// with licences read from the image (base-files has a DEP-5 file).
	for _, pt := range []string{sign.PredicateSPDX, sign.PredicateCycloneDX} {
		att, err := b.Registry.Attachment(context.Background(), v.Ref(), sign.SBOMAttachment(pt))
		if err != nil {
			t.Errorf("%s SBOM attachment: %v", pt, err)
			continue
		}
		_, doc, err := sign.VerifySBOM(shared.signer.Public(), att.Data, v)
		if err != nil {
			t.Errorf("%s SBOM: %v", pt, err)
			continue
		}
		for _, p := range p.Packages {
			if !strings.Contains(string(doc), `"name": "`+p.Name+`"`) {
				t.Errorf("%s SBOM lacks package %s", pt, p.Name)
				break
			}
		}
	}
	checkBootstrap(t, v, string(log.Data))
	if log != nil && !strings.Contains(string(log.Data), "spdx SBOM kept as sbom.spdx.dsse.json") {
		t.Errorf("the build log does not say the SBOM was kept:\n%s", log.Data)
	}

	// Nothing changed: up to date, no version.
	res = build(t, b, est, "basic", Options{})
	if !res.UpToDate || res.Version != nil || res.Latest.Number != 1 {
		t.Fatalf("rebuild without changes: up to date %v, version %v", res.UpToDate, res.Version)
	}

	// Change the last step only: every earlier layer comes from the cache.
	files["basic.kiln.hcl"] = strings.Replace(files["basic.kiln.hcl"], "echo two", "echo three", 1)
	est = estate(t, dir, files)
	res = build(t, b, est, "basic", Options{})
	if res.Version == nil || res.Version.Number != 2 {
		t.Fatalf("build after a change: %+v", res.Version)
	}
	var cached []bool
	for _, s := range res.Steps {
		cached = append(cached, s.Cached)
	}
	want := []bool{true, true, true, false, false} // bootstrap, file, shell, changed shell, release
	if len(cached) != len(want) {
		t.Fatalf("steps %+v, want %d", res.Steps, len(want))
	}
	for i := range want {
		if cached[i] != want[i] {
			t.Errorf("step %d (%s): cached %v, want %v", i+1, res.Steps[i].Name, cached[i], want[i])
		}
	}
	if got := readArtifact(t, res.Version, "etc/step-two")["etc/step-two"]; got != "three\n" {
		t.Errorf("changed step wrote %q", got)
	}

	// --force builds a new version from the cache.
	res = build(t, b, est, "basic", Options{Force: true})
	if res.Version == nil || res.Version.Number != 3 {
		t.Fatalf("forced build: %+v", res.Version)
	}
}

// checkBootstrap checks what a fresh bake's bootstrap leaves: the tree in
// the step cache (copied from the tmpfs when it ran in memory) is its
// layer, hashing to the layer's diff ID; nothing of the dpkg wrapper,
// the dpkg-deb shims or the archives they kept is in the image.
func checkBootstrap(t *testing.T, v *kiln.Version, log string) {
	t.Helper()
	ctx := context.Background()
	if memAvailable() >= scratchMinAvailable && !strings.Contains(log, "bootstrap in memory") {
		t.Errorf("the machine has the memory, yet the bootstrap did not run in a tmpfs:\n%s", log)
	}
	ls, err := layer.Layers(ctx, shared.arts, v.Provenance.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	entries, _ := filepath.Glob(filepath.Join(shared.dataDir, "cache", "steps", "*.json"))
	tree := ""
	for _, p := range entries {
		b, _ := os.ReadFile(p)
		var e cacheEntry
		if json.Unmarshal(b, &e) == nil && e.Step == "bootstrap" && e.DiffID == ls[0].DiffID {
			tree = filepath.Join(shared.dataDir, "cache", "layers", e.Key)
		}
	}
	if tree == "" {
		t.Fatalf("no bootstrap entry in the step cache with diff ID %s", ls[0].DiffID)
	}
	h := sha256.New()
	if err := layer.WriteTar(ctx, tree, h, layer.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != ls[0].DiffID {
		t.Errorf("the bootstrap's tree in the step cache hashes to %s, its layer's diff ID is %s", got, ls[0].DiffID)
	}
	hdrs, bodies := mergedArtifact(t, v)
	for _, p := range []string{"run/kiln-fsys/", "run/kiln-shim/", "usr/lib/kiln-eatmydata.so", "usr/bin/dpkg.distrib", "tmp/kiln-dpkg-wrapper", "etc/dpkg/dpkg.cfg.d/kiln-unsafe-io"} {
		if _, ok := hdrs[p]; ok {
			t.Errorf("the image holds %s, which only the bootstrap may use", p)
		}
	}
	if strings.Contains(bodies["var/lib/dpkg/diversions"], "dpkg.distrib") {
		t.Errorf("dpkg is still diverted in the image:\n%s", bodies["var/lib/dpkg/diversions"])
	}
	if !strings.HasPrefix(bodies["usr/bin/dpkg"], "\x7fELF") {
		t.Error("/usr/bin/dpkg in the image is not dpkg's binary")
	}
}

// A bootstrap with the lists current and an empty package cache gets its
// packages by the parallel downloads; one that fills the build's tmpfs
// runs again on disk and makes the same layer.
func TestBootstrapFillsTmpfs(t *testing.T) {
	b := needBuilder(t)
	if memAvailable() < scratchMinAvailable {
		ci.SkipOrFail(t, "the machine lacks the 2 GiB of available memory a bootstrap in memory needs; bootstraps run on disk (TestFreshBakeCacheAndUpToDate)")
	}
	est := estate(t, t.TempDir(), map[string]string{"full.kiln.hcl": `image "tmpfs-full" {
  method = "fresh"
` + debianBlock + `
}
`})
	// The shared lists current (a bake of the same bootstrap, from the
	// step cache when an earlier test made it), then no package cached.
	build(t, b, est, "tmpfs-full", Options{})
	debs, _ := filepath.Glob(filepath.Join(shared.dataDir, "cache", "apt", "archives", "*.deb"))
	for _, d := range debs {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	old := scratchSize
	scratchSize = func(int64) int64 { return 16 << 20 }
	t.Cleanup(func() { scratchSize = old })
	var log strings.Builder
	res, err := b.Build(context.Background(), est, est.Images["tmpfs-full"], Options{Progress: &log, Verbose: true, NoCache: true, Force: true})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "filled the build's tmpfs") {
		t.Errorf("the build log does not say the bootstrap ran again on disk:\n%s", log.String())
	}
	if m := regexp.MustCompile(`parallel downloads: (\d+) packages`).FindStringSubmatch(log.String()); m == nil || m[1] == "0" {
		t.Errorf("the packages did not come by the parallel downloads (%q):\n%s", m, log.String())
	}
	if again, _ := filepath.Glob(filepath.Join(shared.dataDir, "cache", "apt", "archives", "*.deb")); len(again) < len(debs) {
		t.Errorf("the package cache holds %d packages after the bake, %d before it was emptied", len(again), len(debs))
	}
	checkBootstrap(t, res.Version, "bootstrap in memory")
}

// The book's point about reheating: a package removed from the definition
// disappears from a fresh bake but stays in a reheated image.
func TestReheatKeepsWhatFreshDrops(t *testing.T) {
	b := needBuilder(t)
	ctx := context.Background()
	dir := t.TempDir()
	def := func(method, packages string) map[string]string {
		return map[string]string{"app.kiln.hcl": `image "app" {
  method   = "` + method + `"
  packages = [` + packages + `]
` + debianBlock + `
  shell {
    inline = ["echo app > /etc/app"]
  }
}
`}
	}
	v1 := build(t, b, estate(t, dir, def("fresh", `"hello"`)), "app", Options{}).Version
	if !hasPackage(v1, "hello") {
		t.Fatal("app-1 lacks the hello package it was built with")
	}
	// The reheat installs another package with apt on top of app-1.
	blobsBefore := storeBlobs(t)
	res2 := build(t, b, estate(t, dir, def("reheat", `"netbase"`)), "app", Options{})
	v2 := res2.Version
	// Its artifact is app-1's layers plus its own, and only its own
	// layers (and their list) were written to the store.
	a1, a2 := v1.Provenance.Artifact, v2.Provenance.Artifact
	if !a1.Layered() || !a2.Layered() || len(a2.Layers) <= len(a1.Layers) || !slices.Equal(a2.Layers[:len(a1.Layers)], a1.Layers) {
		t.Fatalf("app-2's layers %+v do not start with app-1's %+v", a2.Layers, a1.Layers)
	}
	want := map[string]bool{a2.Digest: true}
	var own int64
	for _, l := range a2.Layers[len(a1.Layers):] {
		want[l.Digest] = true
		own += l.Size
	}
	for d := range storeBlobs(t) {
		if !blobsBefore[d] && !want[d] {
			t.Errorf("the reheat stored %s, which is neither one of its own layers nor its layer list", d)
		}
	}
	t.Logf("app-1: %d layers, %d bytes; app-2 adds %d layers, %d bytes", len(a1.Layers), a1.Size, len(a2.Layers)-len(a1.Layers), own)
	if own*4 > a1.Size {
		t.Errorf("app-2's own layers take %d bytes, app-1's whole stack %d: a reheat should store only its changes", own, a1.Size)
	}
	if d, err := Diff(ctx, b.Registry, b.Artifacts, v1.Ref(), v2.Ref()); err != nil {
		t.Error(err)
	} else {
		files := map[string]Change{}
		for _, f := range d.Files {
			files[f.Path] = f.Change
		}
		if files["etc/services"] != Added || files["etc/kiln-release"] != Changed || files["usr/bin/hello"] != "" {
			t.Errorf("diff app-1 app-2: etc/services %q, etc/kiln-release %q, usr/bin/hello %q; want added, changed, unchanged", files["etc/services"], files["etc/kiln-release"], files["usr/bin/hello"])
		}
	}
	// app-1's bootstrap left the mirror's current lists in the shared apt
	// cache, so the reheat does not download them again.
	if strings.Contains(string(res2.Log), "apt-get update") {
		t.Error("the reheat ran apt-get update although the shared lists are current")
	}
	if v2.Provenance.Method != kiln.MethodReheat || v2.Provenance.Parent == nil || *v2.Provenance.Parent != v1.Ref() {
		t.Fatalf("app-2 provenance: method %s parent %v, want reheat of %s", v2.Provenance.Method, v2.Provenance.Parent, v1.Name)
	}
	if !hasPackage(v2, "hello") {
		t.Error("reheated app-2 lost hello; a reheat starts from the previous image and keeps it")
	}
	if !hasPackage(v2, "netbase") {
		t.Error("reheated app-2 lacks netbase, which its apt step installs")
	}
	v3 := build(t, b, estate(t, dir, def("fresh", "")), "app", Options{}).Version
	if hasPackage(v3, "hello") {
		t.Error("fresh app-3 has hello, which the definition no longer lists")
	}

	d, err := Diff(ctx, b.Registry, b.Artifacts, v2.Ref(), v3.Ref())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range d.Packages {
		if p.Name == "hello" && p.Change == Removed {
			found = true
		}
	}
	if !found {
		t.Errorf("diff app-2 app-3 does not show hello removed: %+v", d.Packages)
	}
	files := map[string]Change{}
	for _, f := range d.Files {
		files[f.Path] = f.Change
	}
	if files["usr/bin/hello"] != Removed || files["etc/kiln-release"] != Changed {
		t.Errorf("diff files: usr/bin/hello %q, etc/kiln-release %q; want removed, changed", files["usr/bin/hello"], files["etc/kiln-release"])
	}
}

// storeBlobs lists the digests in the shared artifact store.
func storeBlobs(t *testing.T) map[string]bool {
	t.Helper()
	ents, err := os.ReadDir(shared.arts.Dir())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".") {
			out["sha256:"+e.Name()] = true
		}
	}
	return out
}

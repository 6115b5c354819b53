package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/aptrepotest"
)

// TestAptSourceStep: an image with an apt_source records the
// repository's Release digest (and its key) among its sources, its apt
// step always runs apt-get update and changes its cache key when the
// repository publishes, and the step writes the source's list and key into
// the root before apt runs.
func TestAptSourceStep(t *testing.T) {
	ctx := context.Background()
	repo := aptrepotest.New(t)
	repo.Publish(t, "kiln-demo", "1.0-1")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "keys", "demo.asc"), []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	def := `
image "basic-linux" {
  debian { suite = "bookworm" }
}
image "appserver" {
  base     = image.basic-linux
  packages = ["kiln-demo"]
  apt_source "demo" {
    url       = "` + repo.URL + `"
    suite     = "kiln"
    signed_by = "keys/demo.asc"
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	est, diags := definition.Load(dir, definition.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	plan := func() (*run, *step) {
		t.Helper()
		r := &run{b: &Builder{}, est: est, img: est.Images["appserver"], method: kiln.MethodFresh, startDigest: "sha256:" + strings.Repeat("b", 64)}
		if err := r.readAptSources(ctx); err != nil {
			t.Fatal(err)
		}
		r.plan()
		if len(r.steps) == 0 || !strings.HasPrefix(r.steps[0].name, "apt: install kiln-demo") {
			t.Fatalf("steps: %+v", r.steps)
		}
		return r, r.steps[0]
	}
	r1, s1 := plan()
	var recorded []string
	for _, s := range r1.sources {
		recorded = append(recorded, s.Ref+"@"+s.Digest)
	}
	if len(r1.sources) != 2 || !strings.HasPrefix(recorded[0], "apt-source demo: deb [signed-by=/etc/apt/keyrings/kiln-demo.asc] "+repo.URL+" kiln main@sha256:") ||
		!strings.HasPrefix(recorded[1], "keys/demo.asc@sha256:") {
		t.Errorf("sources: %q", recorded)
	}

	root := t.TempDir()
	if err := r1.writeAptSources(root); err != nil {
		t.Fatal(err)
	}
	list, err := os.ReadFile(filepath.Join(root, "etc/apt/sources.list.d/kiln-demo.list"))
	if err != nil || string(list) != "deb [signed-by=/etc/apt/keyrings/kiln-demo.asc] "+repo.URL+" kiln main\n" {
		t.Errorf("list file: %q %v", list, err)
	}
	if key, err := os.ReadFile(filepath.Join(root, "etc/apt/keyrings/kiln-demo.asc")); err != nil || !strings.HasPrefix(string(key), "-----BEGIN PGP") {
		t.Errorf("key file: %q %v", key, err)
	}

	_, again := plan()
	if again.digest != s1.digest {
		t.Error("the apt step's cache key changed without a publication")
	}
	repo.Publish(t, "kiln-demo", "1.0-2")
	_, s2 := plan()
	if s2.digest == s1.digest {
		t.Error("the apt step's cache key did not change when the repository published kiln-demo 1.0-2")
	}
}

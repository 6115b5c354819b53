package build

import (
	"context"
	"github.com/kiln-project/kiln/internal/ci"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

// TestExampleEstate builds examples/estate in dependency order (basic-linux
// first, then the images built on it). It bakes systemd and nginx, so it
// runs only when asked: KILN_TEST_EXAMPLE_ESTATE=1 go test ./build -run Example
func TestExampleEstate(t *testing.T) {
	if os.Getenv("KILN_TEST_EXAMPLE_ESTATE") == "" && os.Getenv("CI") != "true" {
		ci.SkipOrFail(t, "set KILN_TEST_EXAMPLE_ESTATE=1 to build the example estate (CI always does)")
	}
	b := needBuilder(t)
	est, diags := definition.Load(filepath.Join("..", "examples", "estate"), definition.Options{})
	if diags.HasErrors() {
		t.Fatal(definition.FormatDiagnostics(diags))
	}
	res, err := b.BuildAll(context.Background(), est, nil, Options{Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		v := r.Version
		if v == nil {
			t.Fatalf("%s: no version", r.Image)
		}
		t.Logf("%s: %d packages, artifact %d MiB, base %v", v.Name, len(v.Provenance.Packages), v.Provenance.Artifact.Size>>20, v.Provenance.Base)
		rel := readArtifact(t, v, "etc/kiln-release")["etc/kiln-release"]
		if !strings.Contains(rel, "name="+v.Name+"\n") {
			t.Errorf("%s: /etc/kiln-release:\n%s", v.Name, rel)
		}
		if r.Image != "basic-linux" && (v.Provenance.Base == nil || v.Provenance.Base.Image != "basic-linux") {
			t.Errorf("%s: base %v, want the basic-linux version built in this run", v.Name, v.Provenance.Base)
		}
	}
	if !hasPackage(res[len(res)-1].Version, "systemd") {
		t.Error("an image built on basic-linux lacks systemd")
	}
}

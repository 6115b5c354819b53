package definition_test

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

// exampleDir is the estate shipped in examples/estate.
func exampleDir(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "examples", "estate")
}

func TestLoadExampleEstate(t *testing.T) {
	est, diags := definition.Load(exampleDir(t), definition.Options{})
	if len(diags) > 0 {
		t.Fatalf("example estate has diagnostics:\n%s", definition.FormatDiagnostics(diags))
	}
	if got, want := strings.Join(est.Order, " "), "basic-linux appserver container-node"; got != want {
		t.Errorf("Order = %q, want %q", got, want)
	}
	bl := est.Images["basic-linux"]
	if bl.Debian == nil || bl.Debian.Suite != "bookworm" || bl.Debian.Variant != "minbase" || bl.Debian.Mirror != "http://deb.debian.org/debian" {
		t.Errorf("basic-linux debian = %+v", bl.Debian)
	}
	for _, name := range []string{"appserver", "container-node"} {
		img := est.Images[name]
		if img.Base == nil || img.Base.Image != "basic-linux" || img.Base.Number != 0 {
			t.Errorf("%s base = %+v, want latest basic-linux", name, img.Base)
		}
		if len(img.Tests) != 1 || img.Tests[0] != "tests/"+name+".yaml" {
			t.Errorf("%s tests = %v", name, img.Tests)
		}
	}
	for _, img := range est.Images {
		if !strings.HasPrefix(img.Digest, "sha256:") || len(img.Digest) != 71 {
			t.Errorf("%s digest = %q", img.Name, img.Digest)
		}
		for i, st := range img.Steps {
			if len(st.Digest) != 71 {
				t.Errorf("%s step %d digest = %q", img.Name, i, st.Digest)
			}
		}
	}
	if !contains(est.Images["appserver"].Packages, "nginx-light") {
		t.Errorf("appserver packages = %v", est.Images["appserver"].Packages)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

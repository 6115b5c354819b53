package definition_test

import (
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

func TestEstateImage(t *testing.T) {
	est := mustLoad(t, "testdata/estates/good-full", definition.Options{})
	if img, err := est.Image("zeta"); err != nil || img.Name != "zeta" {
		t.Errorf("Image(zeta) = %v, %v", img, err)
	}
	_, err := est.Image("appserve")
	if kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(kiln.ErrorMessage(err), "did you mean appserver?") {
		t.Errorf("Image(appserve) error = %v", err)
	}
	_, err = est.Image("something-else")
	if !strings.Contains(kiln.ErrorMessage(err), "it defines basic-linux, appserver, imported, reheated, remote, zeta") {
		t.Errorf("Image(something-else) error = %v", err)
	}
}

func TestEstateBuiltOn(t *testing.T) {
	est := mustLoad(t, "testdata/estates/good-full", definition.Options{})
	for name, want := range map[string]string{
		"basic-linux": "appserver reheated zeta",
		"appserver":   "reheated",
		"zeta":        "",
		"imported":    "",
	} {
		if got := strings.Join(est.BuiltOn(name), " "); got != want {
			t.Errorf("BuiltOn(%s) = %q, want %q", name, got, want)
		}
	}
}

func BenchmarkLoadExampleEstate(b *testing.B) {
	dir := "../examples/estate"
	for b.Loop() {
		if _, diags := definition.Load(dir, definition.Options{}); diags.HasErrors() {
			b.Fatal(definition.FormatDiagnostics(diags))
		}
	}
}

package definition_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

// FuzzLoad writes the fuzzed bytes as the one definition file of an estate
// (next to a few files it may refer to) and loads it: Load must never
// panic, must return an estate exactly when there is no error, and every
// error must be renderable.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/estates/*/*.kiln.hcl")
	ex, _ := filepath.Glob("../examples/estate/*.kiln.hcl")
	for _, p := range append(seeds, ex...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`image "a" { base = image.a }`))
	f.Add([]byte(`locals { a = "${local.a}" }`))
	f.Add([]byte(`image "a" {
  debian { suite = "bookworm" }
  volatile = ["/var/lib/nginx", "/srv/**/cache", "/[x", "rel"]
}`))
	// One estate directory per fuzzing process, reused by every input:
	// Load only reads it, and inputs run one at a time in a process.
	dir := f.TempDir()
	for name, content := range map[string]string{
		"files/motd":             "hello\n",
		"scripts/setup.sh":       "true\n",
		"tests/basic-linux.yaml": "file: {}\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		if err := os.WriteFile(filepath.Join(dir, "fuzz.kiln.hcl"), src, 0o644); err != nil {
			t.Fatal(err)
		}
		est, diags := definition.Load(dir, definition.Options{})
		if (est == nil) != diags.HasErrors() {
			t.Fatalf("estate nil = %v but errors = %v", est == nil, diags.HasErrors())
		}
		_ = definition.FormatDiagnostics(diags)
		if est != nil {
			if len(est.Order) != len(est.Images) {
				t.Fatalf("Order %v does not list all %d images", est.Order, len(est.Images))
			}
			for _, img := range est.Images {
				if len(img.Digest) != len("sha256:")+64 {
					t.Fatalf("image %s has digest %q", img.Name, img.Digest)
				}
			}
		}
	})
}

package definition_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
)

// copyEstate copies testdata/estates/name into a new temporary directory.
func copyEstate(t *testing.T, name string) string {
	t.Helper()
	src := filepath.Join("testdata", "estates", name)
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func mustLoad(t *testing.T, dir string, opts definition.Options) *definition.Estate {
	t.Helper()
	est, diags := definition.Load(dir, opts)
	if diags.HasErrors() {
		t.Fatalf("load %s:\n%s", dir, definition.FormatDiagnostics(diags))
	}
	return est
}

func digests(est *definition.Estate) map[string]string {
	m := map[string]string{}
	for name, img := range est.Images {
		m[name] = img.Digest
		for i, st := range img.Steps {
			m[name+"/step"+string(rune('0'+i))] = st.Digest
		}
	}
	return m
}

// TestDigestChanges changes one input of the good-full estate at a time and
// checks that exactly the digests depending on it change.
func TestDigestChanges(t *testing.T) {
	appendTo := func(rel, text string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, rel)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, append(b, text...), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	replaceIn := func(rel, old, new string) func(t *testing.T, dir string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, rel)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), old) {
				t.Fatalf("%s does not contain %q", rel, old)
			}
			if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Images built on basic-linux (appserver, zeta) and on appserver
	// (reheated) change with it.
	basicChain := []string{"basic-linux", "appserver", "reheated", "zeta"}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		opts   definition.Options
		want   []string // digests that change
	}{
		{"nothing", func(*testing.T, string) {}, definition.Options{}, nil},
		{"comment outside blocks", appendTo("images.kiln.hcl", "\n# a comment\n"), definition.Options{}, nil},
		{"script content", appendTo("scripts/setup.sh", "echo more\n"), definition.Options{}, append([]string{"basic-linux/step2"}, basicChain...)},
		{"file content", appendTo("files/motd", "more\n"), definition.Options{}, append([]string{"basic-linux/step0", "appserver/step0"}, basicChain...)},
		{"test file", appendTo("tests/basic-linux.yaml", "# more\n"), definition.Options{}, basicChain},
		{"block text", replaceIn("images.kiln.hcl", `source = "https://images`, "# moved\n    source = \"https://images"), definition.Options{}, []string{"remote"}},
		{"file mode", replaceIn("images.kiln.hcl", `mode        = "4755"`, `mode        = "0755"`), definition.Options{}, []string{"appserver/step0", "appserver", "reheated"}},
		{"shell env", replaceIn("images.kiln.hcl", `FOO = "bar"`, `FOO = "baz"`), definition.Options{}, append([]string{"basic-linux/step2"}, basicChain...)},
		{"variable value", func(*testing.T, string) {}, definition.Options{Vars: map[string]string{"mirror": "http://mirror.example.org/debian"}}, basicChain},
		{"local in a step", replaceIn("estate.kiln.hcl", `user     = "root"`, `user     = "daemon"`), definition.Options{}, append([]string{"basic-linux/step0"}, basicChain...)},
	}
	before := digests(mustLoad(t, copyEstate(t, "good-full"), definition.Options{}))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyEstate(t, "good-full")
			tt.change(t, dir)
			after := digests(mustLoad(t, dir, tt.opts))
			want := map[string]bool{}
			for _, k := range tt.want {
				want[k] = true
			}
			for k, d := range before {
				if changed := after[k] != d; changed != want[k] {
					t.Errorf("%s digest changed = %v, want %v", k, changed, want[k])
				}
			}
		})
	}
}

// TestLoadSymlinkedEstate loads an estate through a symlink to its
// directory: paths inside it stay inside, and the digests do not depend on
// where the estate lives.
func TestLoadSymlinkedEstate(t *testing.T) {
	dir := copyEstate(t, "good-full")
	link := filepath.Join(t.TempDir(), "estate")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	est := mustLoad(t, link, definition.Options{})
	real, _ := filepath.EvalSymlinks(dir)
	if est.Dir != real {
		t.Errorf("Dir = %q, want %q", est.Dir, real)
	}
	step := est.Images["basic-linux"].Steps[0]
	if want := filepath.Join(real, "files", "motd"); step.Path != want {
		t.Errorf("file step Path = %q, want %q", step.Path, want)
	}
	if got := est.Images["basic-linux"].TestPaths; len(got) != 1 || got[0] != filepath.Join(real, "tests", "basic-linux.yaml") {
		t.Errorf("TestPaths = %v", got)
	}
	if got := est.Images["imported"].Artifact.Path; got != filepath.Join(real, "rootfs.tar") {
		t.Errorf("artifact Path = %q", got)
	}
	other := mustLoad(t, copyEstate(t, "good-full"), definition.Options{})
	for name, img := range est.Images {
		if other.Images[name].Digest != img.Digest {
			t.Errorf("%s digest differs between two copies of the estate", name)
		}
	}
}

func TestLoadNotAnEstate(t *testing.T) {
	empty := t.TempDir()
	file := filepath.Join(empty, "x.kiln.hcl")
	for _, tt := range []struct{ dir, want string }{
		{empty, "error: No definition files; "},
		{filepath.Join(empty, "missing"), "error: Cannot read estate directory; "},
		{file, "error: Estate is not a directory; "},
	} {
		if tt.dir == file {
			if err := os.WriteFile(file, []byte(`image "x" {}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		est, diags := definition.Load(tt.dir, definition.Options{})
		if got := definition.FormatDiagnostics(diags); est != nil || !strings.HasPrefix(got, tt.want) {
			t.Errorf("Load(%s) = %v, %q; want nil, %q…", tt.dir, est, got, tt.want)
		}
	}
}

// TestLoadSymlinkedDefinitionFiles reads a definition file symlinked from
// inside the estate and refuses one symlinked from outside.
func TestLoadSymlinkedDefinitionFiles(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(dir, "defs", "a.hcl"), "image \"a\" {\n  debian { suite = \"bookworm\" }\n}\n")
	write(filepath.Join(outside, "b.kiln.hcl"), "image \"b\" {\n  debian { suite = \"bookworm\" }\n}\n")
	if err := os.Symlink("defs/a.hcl", filepath.Join(dir, "a.kiln.hcl")); err != nil {
		t.Fatal(err)
	}
	est := mustLoad(t, dir, definition.Options{})
	if len(est.Images) != 1 || est.Images["a"] == nil {
		t.Fatalf("images = %v, want a", est.Order)
	}
	if err := os.Symlink(filepath.Join(outside, "b.kiln.hcl"), filepath.Join(dir, "b.kiln.hcl")); err != nil {
		t.Fatal(err)
	}
	_, diags := definition.Load(dir, definition.Options{})
	got := definition.FormatDiagnostics(diags)
	if !strings.Contains(got, `error: Path outside the estate; definition file "b.kiln.hcl" is a symlink to`) {
		t.Errorf("diagnostics = %q, want the outside symlink refused", got)
	}
}

// TestStepDigestIgnoresSourceName renames a file step's source: the step
// digest stays (same content, same result in the image), the image digest
// changes (its block text changed).
func TestStepDigestIgnoresSourceName(t *testing.T) {
	dir := copyEstate(t, "good-full")
	before := mustLoad(t, dir, definition.Options{})
	if err := os.Rename(filepath.Join(dir, "files", "motd"), filepath.Join(dir, "files", "banner")); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "images.kiln.hcl")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(strings.ReplaceAll(string(b), "files/motd", "files/banner")), 0o644); err != nil {
		t.Fatal(err)
	}
	after := mustLoad(t, dir, definition.Options{})
	if a, b := after.Images["basic-linux"].Steps[0].Digest, before.Images["basic-linux"].Steps[0].Digest; a != b {
		t.Errorf("step digest changed with the source's name: %s → %s", b, a)
	}
	if after.Images["basic-linux"].Digest == before.Images["basic-linux"].Digest {
		t.Error("image digest did not change with its block text")
	}
}

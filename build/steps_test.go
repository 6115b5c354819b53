package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
)

// A file step creates missing parent directories and resolves the
// destination inside the image: an absolute symlink in the image points
// into the image, never at the host.
func TestCopyIntoStaysInRoot(t *testing.T) {
	ci.Root(t, "setting file owners")
	root := t.TempDir()
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nadm:x:4:\n"), 0o644)
	// /srv in the image is an absolute symlink to a path that, on the
	// host, is the outside directory.
	if err := os.Symlink(outside, filepath.Join(root, "srv")); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(root, outside), 0o755)
	src := filepath.Join(t.TempDir(), "index.html")
	os.WriteFile(src, []byte("hello"), 0o600)

	st := &definition.Step{Kind: definition.StepFile, Source: "index.html", Path: src, Destination: "/srv/www/html/index.html", Mode: 0o640, Owner: "root:adm",
		Dir: filepath.Dir(src), SourceDigest: "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}
	if err := copyInto(root, st); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("the file step wrote outside the image root: %v", ents)
	}
	// The symlink resolved inside the root: <root><outside>/www/html/index.html.
	p := filepath.Join(root, outside, "www/html/index.html")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(p); string(b) != "hello" {
		t.Errorf("content %q", b)
	}
}

// A file source checked when the estate loaded but replaced afterwards by
// a symlink out of the estate is refused, and so is one whose content
// changed: the build reads beneath the estate directory and against the
// digest recorded at load.
func TestCopyIntoRefusesEstateFileChangedAfterLoad(t *testing.T) {
	ci.Root(t, "setting file owners")
	estate := t.TempDir()
	os.MkdirAll(filepath.Join(estate, "files"), 0o755)
	os.WriteFile(filepath.Join(estate, "files/motd"), []byte("hello\n"), 0o644)
	os.WriteFile(filepath.Join(estate, "basic.kiln.hcl"), []byte(`
image "basic-linux" {
  debian { suite = "bookworm" }
  file {
    source      = "files/motd"
    destination = "/etc/motd"
  }
}
`), 0o644)
	est, diags := definition.Load(estate, definition.Options{})
	if diags.HasErrors() {
		t.Fatal(definition.FormatDiagnostics(diags))
	}
	st := &est.Images["basic-linux"].Steps[0]
	newRoot := func() string {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "etc"), 0o755)
		os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644)
		os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
		return root
	}
	if err := copyInto(newRoot(), st); err != nil {
		t.Fatalf("unchanged file: %v", err)
	}

	secret := filepath.Join(t.TempDir(), "shadow")
	os.WriteFile(secret, []byte("root:SECRET\n"), 0o600)
	os.Remove(filepath.Join(estate, "files/motd"))
	if err := os.Symlink(secret, filepath.Join(estate, "files/motd")); err != nil {
		t.Fatal(err)
	}
	root := newRoot()
	err := copyInto(root, st)
	if err == nil {
		t.Fatal("a symlink out of the estate swapped in after load was followed")
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/motd")); strings.Contains(string(b), "SECRET") {
		t.Fatalf("the file outside the estate reached the image: %q", b)
	}

	os.Remove(filepath.Join(estate, "files/motd"))
	os.WriteFile(filepath.Join(estate, "files/motd"), []byte("changed\n"), 0o644)
	err = copyInto(newRoot(), st)
	if err == nil || !strings.Contains(err.Error(), "changed since the estate was loaded") {
		t.Fatalf("content changed after load: err = %v, want a digest mismatch", err)
	}
}

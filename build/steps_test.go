package build

import (
	"os"
	"path/filepath"
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

	st := &definition.Step{Kind: definition.StepFile, Source: "index.html", Path: src, Destination: "/srv/www/html/index.html", Mode: 0o640, Owner: "root:adm"}
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

package build

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
)

// TestBootstrapLists: the shared lists stand in for the bootstrap's
// apt-get update only while they hold the mirror's current Release and a
// Packages list for every component asked for.
func TestBootstrapLists(t *testing.T) {
	dir := t.TempDir()
	r := &run{cache: &cache{dir: dir}, debian: &definition.Debian{Suite: "bookworm"}}
	lists, _ := r.aptDirs()
	const prefix = "deb.debian.org_debian_dists_bookworm_"
	write := func(name, content string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(lists, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(prefix+"InRelease", "release 1")
	write(prefix+"main_binary-amd64_Packages", "Package: a\n")
	digest, err := fileDigest(filepath.Join(lists, prefix+"InRelease"))
	if err != nil {
		t.Fatal(err)
	}
	r.release = &debian.Release{URL: "http://deb.debian.org/debian/dists/bookworm/InRelease", Digest: digest}

	if d, p := r.bootstrapLists(); d != lists || p != prefix {
		t.Errorf("current lists: got %q %q, want %q %q", d, p, lists, prefix)
	}
	r.debian.Components = []string{"main", "contrib"}
	if d, _ := r.bootstrapLists(); d != "" {
		t.Error("lists without contrib's Packages stood in for a bootstrap that asks for contrib")
	}
	r.debian.Components = nil
	r.release.Digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000"
	if d, _ := r.bootstrapLists(); d != "" {
		t.Error("lists of an older Release stood in for the bootstrap's update")
	}
	r.release = nil
	if d, _ := r.bootstrapLists(); d != "" {
		t.Error("lists used without a Release fetched")
	}
}

package bake

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/internal/ci"
)

// TestDebCache bootstraps the essential set with an empty package cache
// (which the bootstrap fills, while the image keeps none of the packages),
// then bootstraps again reading it: the packages the second bootstrap
// installs are the cache's files (same inode), not downloads.
func TestDebCache(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "mmdebstrap --mode=root needs root")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		ci.SkipOrFail(t, "needs mmdebstrap (apt-get install mmdebstrap)")
	}
	mirror := os.Getenv("KILN_TEST_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	ctx := context.Background()
	rel, err := debian.FetchRelease(ctx, nil, mirror, "bookworm")
	if err != nil {
		t.Fatalf("fetch the Release file (the test needs the mirror): %v", err)
	}
	dir := t.TempDir()
	cache := filepath.Join(dir, "debs")
	var log strings.Builder

	bs := &Bootstrap{Suite: "bookworm", Mirror: mirror, Variant: "essential", Epoch: rel.Date, DebCache: cache}
	out := filepath.Join(dir, "essential.tar")
	if err := bs.Command(ctx, out, "", &log).Run(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, log.String())
	}
	debs, _ := filepath.Glob(filepath.Join(cache, "*.deb"))
	if len(debs) < 15 {
		t.Fatalf("the cache holds %d packages after an essential bootstrap: %v", len(debs), debs)
	}
	if tmp, _ := filepath.Glob(filepath.Join(cache, ".tmp-*")); len(tmp) != 0 {
		t.Errorf("temporary files left in the cache: %v", tmp)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(h.Name, "var/cache/apt/archives/") && strings.HasSuffix(h.Name, ".deb") {
			t.Errorf("the image holds a cached package: %s", h.Name)
		}
	}

	// A second bootstrap of base-files (extract variant: download and
	// unpack only) finds it in the cache.
	var cached string
	for _, d := range debs {
		if strings.HasPrefix(filepath.Base(d), "base-files_") {
			cached = d
		}
	}
	if cached == "" {
		t.Fatalf("no base-files package in the cache: %v", debs)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(cached, &st); err != nil {
		t.Fatal(err)
	}
	seen := filepath.Join(dir, "inode")
	again := &Bootstrap{Suite: "bookworm", Mirror: mirror, Variant: "extract", Include: []string{"base-files"}, Epoch: rel.Date, DebCache: cache}
	args := again.Args(filepath.Join(dir, "extract"), "directory")
	n := len(args) - 3 // SUITE TARGET MIRROR come last
	hook := `--extract-hook=stat -c %i "$1"/var/cache/apt/archives/base-files_*.deb > ` + shellQuote(seen)
	args = append(args[:n:n], append([]string{hook}, args[n:]...)...)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	log.Reset()
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("mmdebstrap %s: %v\n%s", strings.Join(args, " "), err, log.String())
	}
	b, err := os.ReadFile(seen)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.FormatUint(st.Ino, 10) {
		t.Errorf("the second bootstrap used base-files inode %s, want the cache's %d (downloaded again?)", got, st.Ino)
	}
}

package bake

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/internal/ci"
)

// TestBootstrapArgsLists: with current lists the bootstrap copies them in
// and skips apt-get update, and does not export them again.
func TestBootstrapArgsLists(t *testing.T) {
	bs := &Bootstrap{Suite: "bookworm", Mirror: "http://deb.debian.org/debian", ExportLists: "/c/lists", Lists: "/c/lists", ListsPrefix: "deb.debian.org_debian_dists_bookworm_"}
	args := strings.Join(bs.Args("/t", "directory"), "\n")
	for _, want := range []string{"--skip=update", `cp -p '/c/lists'/'deb.debian.org_debian_dists_bookworm_'* "$1/var/lib/apt/lists/"`} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "ln \"$f\"") && strings.Contains(args, "/var/lib/apt/lists/*") {
		t.Errorf("the lists are exported again:\n%s", args)
	}
	bs.Lists = ""
	if args := bs.Args("/t", "directory"); slices.Contains(args, "--skip=update") {
		t.Errorf("no lists given, yet the update is skipped: %q", args)
	}
}

// TestBootstrapFromCurrentLists bootstraps the essential set, exporting
// its lists and packages, then again from those lists and packages with
// apt's only way to the network closed (a proxy on a port nothing listens
// on): it succeeds only if it ran no apt-get update and downloaded nothing.
func TestBootstrapFromCurrentLists(t *testing.T) {
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
	lists, debs := filepath.Join(dir, "lists"), filepath.Join(dir, "debs")
	var log strings.Builder
	first := &Bootstrap{Suite: "bookworm", Mirror: mirror, Variant: "essential", Epoch: rel.Date, DebCache: debs, ExportLists: lists}
	if err := first.Command(ctx, filepath.Join(dir, "first.tar"), "", &log).Run(); err != nil {
		t.Fatalf("mmdebstrap: %v\n%s", err, log.String())
	}
	u := rel.URL
	if _, after, ok := strings.Cut(u, "://"); ok {
		u = after
	}
	prefix := strings.TrimSuffix(strings.TrimSuffix(strings.ReplaceAll(u, "/", "_"), "InRelease"), "Release")
	if m, _ := filepath.Glob(filepath.Join(lists, prefix+"*Packages*")); len(m) == 0 {
		t.Fatalf("no Packages list named %s* exported: %v", prefix, m)
	}

	again := &Bootstrap{Suite: "bookworm", Mirror: mirror, Variant: "essential", Epoch: rel.Date, DebCache: debs, Lists: lists, ListsPrefix: prefix}
	args := again.Args(filepath.Join(dir, "again.tar"), "")
	n := len(args) - 3 // SUITE TARGET MIRROR come last
	closed := []string{`--aptopt=Acquire::http::Proxy "http://127.0.0.1:9"`, `--aptopt=Acquire::https::Proxy "http://127.0.0.1:9"`}
	args = append(args[:n:n], append(closed, args[n:]...)...)
	cmd := exec.CommandContext(ctx, "mmdebstrap", args...)
	log.Reset()
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("bootstrap from the exported lists with the network closed: %v\n%s", err, log.String())
	}
}

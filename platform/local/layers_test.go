package local

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
)

// TestLaunchLayered boots an instance from a stack of layers: the test
// image as an uncompressed bottom layer, a gzip layer adding two files
// and a gzip layer deleting one of them again (an OCI whiteout). The
// layers are unpacked once each into the layer cache and shared by a
// second artifact on the same base; the instance sees the merged tree.
func TestLaunchLayered(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	mid := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(mid, "etc/kiln-mid"), "mid\n")
	write(filepath.Join(mid, "etc/kiln-gone"), "gone\n")
	lmid, err := layer.Put(ctx, e.store, mid, layer.WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	write(filepath.Join(top, "etc/kiln-top"), "top\n")
	if err := unix.Mknod(filepath.Join(top, "etc/kiln-gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	ltop, err := layer.Put(ctx, e.store, top, layer.WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	base := layer.Tar(&e.art)
	art, err := layer.PutList(ctx, e.store, []kiln.Layer{base, lmid, ltop})
	if err != nil {
		t.Fatal(err)
	}

	// Layers recorded with the version that the stored list does not
	// name are refused before anything is unpacked.
	forged := *art
	forged.Layers = []kiln.Layer{base, ltop}
	if _, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: "forged-1", Name: "forged", Artifact: forged, Timeout: time.Minute}); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("launch with forged layers: %v, want a conflict", err)
	}

	id := "layered-1"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	if _, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "layered", Artifact: *art, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	run := func(argv ...string) (int, string) {
		t.Helper()
		var out bytes.Buffer
		code, err := e.p.Exec(ctx, id, argv, kiln.ExecIO{Stdout: &out, Stderr: &out})
		if err != nil {
			t.Fatal(err)
		}
		return code, out.String()
	}
	if code, out := run("cat", "/etc/kiln-mid", "/etc/kiln-top", "/etc/os-release"); code != 0 || !strings.HasPrefix(out, "mid\ntop\n") || !strings.Contains(out, "Debian") {
		t.Errorf("files of the stack: exit %d, %q", code, out)
	}
	if code, out := run("test", "-e", "/etc/kiln-gone"); code == 0 {
		t.Errorf("/etc/kiln-gone is visible although the top layer deletes it (%s)", out)
	}

	rec, _, err := e.p.load(id)
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Lowers) != 3 || rec.Lowers[0] != e.p.layerDir(ltop) || rec.Lowers[2] != e.p.layerDir(base) {
		t.Errorf("instance lowers %v, want the three cached layers top first", rec.Lowers)
	}
	// Drift detection's view of the image: merged, read-only.
	lower, err := e.p.LowerDir(id)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(lower, "etc/kiln-top")); err != nil || string(b) != "top\n" {
		t.Errorf("LowerDir's etc/kiln-top = %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(lower, "etc/kiln-gone")); !os.IsNotExist(err) {
		t.Errorf("LowerDir shows etc/kiln-gone: %v", err)
	}
	if err := os.WriteFile(filepath.Join(lower, "etc/x"), nil, 0o644); err == nil {
		t.Error("LowerDir's view is writable")
	}

	// A second artifact on the same base: only its own layer is unpacked.
	other := t.TempDir()
	write(filepath.Join(other, "etc/kiln-other"), "other\n")
	lother, err := layer.Put(ctx, e.store, other, layer.WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	art2, err := layer.PutList(ctx, e.store, []kiln.Layer{base, lother})
	if err != nil {
		t.Fatal(err)
	}
	baseDir, _ := os.Stat(e.p.layerDir(base))
	dirs, err := e.p.lowers(ctx, *art2)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := os.Stat(e.p.layerDir(base))
	if len(dirs) != 2 || !os.SameFile(baseDir, again) {
		t.Errorf("second stack %v: the shared base layer was unpacked again", dirs)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.p.dataDir, "rootfs")); len(ents) != 0 {
		t.Errorf("the rootfs cache holds %d trees; layered artifacts need none", len(ents))
	}

	// Prune keeps the running instance's layers, drops the unused one.
	removed, err := e.p.PruneRootfs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != lother.DiffID {
		t.Errorf("pruned %v, want only %s", removed, lother.DiffID)
	}
	if err := e.p.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if removed, err := e.p.PruneRootfs(ctx, nil); err != nil || len(removed) != 3 {
		t.Errorf("pruned after destroy: %v, %v; want the three layers", removed, err)
	}
	if l := e.leftovers(t); len(l) > 0 {
		t.Errorf("leftovers: %v", l)
	}
}

package local

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// fingerprint summarises a tree: every path with its mode, size, mtime and
// owner, so that any write into the rootfs cache shows.
func fingerprint(t *testing.T, root string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v %d %d\n", strings.TrimPrefix(p, root), fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestInstanceWritesStayInUpper checks the overlay: the instance's writes
// land in its upper dir, the cached rootfs is untouched, and the probe is
// mounted read-only.
func TestInstanceWritesStayInUpper(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := "overlay-1"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	lower, err := e.p.rootfs(ctx, e.art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	before := fingerprint(t, lower)
	if _, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "ov", Artifact: e.art, Timeout: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if code, err := e.p.Exec(ctx, id, []string{"sh", "-c", "echo drift > /etc/drifted && rm /etc/issue"}, kiln.ExecIO{}); err != nil || code != 0 {
		t.Fatalf("write inside: %d %v", code, err)
	}
	if b, err := os.ReadFile(filepath.Join(e.p.UpperDir(id), "etc/drifted")); err != nil || string(b) != "drift\n" {
		t.Errorf("upper dir: etc/drifted = %q, %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(e.p.UpperDir(id), "etc/issue")); err != nil || fi.Mode()&fs.ModeCharDevice == 0 {
		t.Errorf("upper dir: etc/issue should be a whiteout: %v %v", fi, err)
	}
	if got, err := e.p.LowerDir(id); err != nil || got != lower {
		t.Errorf("LowerDir = %q, %v; want the cached rootfs %s", got, err, lower)
	}
	if _, err := e.p.LowerDir("no-such-instance"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("LowerDir of a missing instance = %v, want ENOTFOUND", err)
	}
	if code, _ := e.p.Exec(ctx, id, []string{ProbePath, "-test.list=^$"}, kiln.ExecIO{}); code != 0 {
		t.Errorf("probe at %s: exit %d", ProbePath, code)
	}
	if code, _ := e.p.Exec(ctx, id, []string{"sh", "-c", "echo x >> " + ProbePath}, kiln.ExecIO{}); code == 0 {
		t.Errorf("probe at %s is writable", ProbePath)
	}
	if got, err := e.p.PruneRootfs(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("PruneRootfs with the rootfs in use = %v, %v; want nothing removed", got, err)
	}
	if err := e.p.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	if after := fingerprint(t, lower); after != before {
		t.Error("the rootfs cache changed while an instance ran on it")
	}
	keep := func(d string) bool { return d == e.art.Digest }
	if got, err := e.p.PruneRootfs(ctx, keep); err != nil || len(got) != 0 {
		t.Errorf("PruneRootfs keeping the digest = %v, %v; want nothing removed", got, err)
	}
	if got, err := e.p.PruneRootfs(ctx, nil); err != nil || len(got) != 1 || got[0] != e.art.Digest {
		t.Errorf("PruneRootfs = %v, %v; want %s removed", got, err, e.art.Digest)
	}
	if _, err := os.Stat(lower); !os.IsNotExist(err) {
		t.Errorf("pruned rootfs still there: %v", err)
	}
}

// TestCorruptArtifactNotCached checks that an artifact whose content does
// not match its digest is refused and leaves nothing in the cache.
func TestCorruptArtifactNotCached(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	path, err := e.store.Path(e.art.Digest)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("X"), 1000); err != nil { // inside the first header's padding
		t.Fatal(err)
	}
	f.Close()
	_, err = e.p.Launch(ctx, kiln.LaunchSpec{ID: "corrupt-1", Name: "c", Artifact: e.art, Timeout: time.Minute})
	if err == nil {
		t.Fatal("launch from a corrupt artifact succeeded")
	}
	ents, _ := os.ReadDir(filepath.Join(e.p.dataDir, "rootfs"))
	if len(ents) != 0 {
		t.Errorf("rootfs cache holds %v after a corrupt unpack", ents)
	}
	if _, err := os.Stat(e.p.instanceDir("corrupt-1")); !os.IsNotExist(err) {
		t.Error("instance directory left after a failed launch")
	}
}

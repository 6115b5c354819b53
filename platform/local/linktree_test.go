package local

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
)

// fakeTrees hands out fixed trees and counts the calls and releases.
type fakeTrees struct {
	dirs            []string
	calls, releases int
	err             error
}

func (f *fakeTrees) LayerTrees(_ context.Context, _ kiln.Artifact, ls []kiln.Layer) ([]string, func(), error) {
	f.calls++
	if len(ls) != len(f.dirs) && f.err == nil {
		return nil, func() {}, fmt.Errorf("asked for %d layers, have %d trees", len(ls), len(f.dirs))
	}
	if f.err != nil {
		return nil, func() {}, f.err
	}
	return slices.Clone(f.dirs), func() { f.releases++ }, nil
}

// layerTree makes a layer's tree with every kind of entry the layer
// format carries (and two it leaves out) and returns its directory.
func layerTree(t *testing.T, top bool) string {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc/app"), 0o755))
	must(os.MkdirAll(filepath.Join(dir, "srv/data"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/app/conf"), []byte("a = 1\n"), 0o640))
	must(os.Chown(filepath.Join(dir, "etc/app/conf"), 0, 42))
	must(os.Chmod(filepath.Join(dir, "srv/data"), 0o2770))
	must(os.Chown(filepath.Join(dir, "srv/data"), 1234, 1234))
	must(os.Chmod(filepath.Join(dir, "srv/data"), 0o2770)) // chown cleared the set-gid bit
	must(unix.Setxattr(filepath.Join(dir, "srv/data"), "user.kiln", []byte("kept"), 0))
	must(os.WriteFile(filepath.Join(dir, "usr-bin-tool"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Link(filepath.Join(dir, "usr-bin-tool"), filepath.Join(dir, "usr-bin-tool2")))
	must(os.Symlink("/etc/app/conf", filepath.Join(dir, "etc/conf-link")))
	must(unix.Mkfifo(filepath.Join(dir, "etc/app/fifo"), 0o600))
	// Left out by the layer format, so by the link copy too.
	must(unix.Mknod(filepath.Join(dir, "etc/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	l, err := net.Listen("unix", filepath.Join(dir, "etc/app/sock"))
	must(err)
	l.Close() // the socket file stays
	if top {
		must(unix.Mknod(filepath.Join(dir, "etc/gone"), unix.S_IFCHR, 0)) // whiteout
		must(unix.Setxattr(filepath.Join(dir, "srv"), "trusted.overlay.opaque", []byte("y"), 0))
		must(unix.Setxattr(filepath.Join(dir, "etc"), "trusted.overlay.impure", []byte("y"), 0)) // overlayfs's own: left out
	}
	old := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	must(filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		ts := unix.NsecToTimespec(old.UnixNano())
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}))
	return dir
}

// entries describes every entry under dir by what the layer format
// carries: type, mode, owner, mtime (seconds; not a whiteout's), size
// and xattrs (with the opaque mark, without overlayfs's other attributes).
func entries(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		names, err := listXattrs(p)
		if err != nil {
			return err
		}
		var xs []string
		for _, n := range names {
			if strings.HasPrefix(n, "trusted.overlay.") && n != overlayOpaque {
				continue
			}
			v, err := getXattr(p, n)
			if err != nil {
				return err
			}
			xs = append(xs, n+"="+string(v))
		}
		slices.Sort(xs)
		size := st.Size
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			size = 0
		}
		mtime := st.Mtim.Sec
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			mtime = 0 // a whiteout: never seen, and unpacking gives it the time of the unpack
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("mode=%o uid=%d gid=%d mtime=%d rdev=%d size=%d xattrs=%v", st.Mode, st.Uid, st.Gid, mtime, st.Rdev, size, xs)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func ino(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestLowersLinkBuildTrees: a launch takes the layers of a version from
// the trees the build kept, as hard links, checked against each diff ID:
// the layer cache then holds what unpacking the blobs gives (every field
// the layer format carries), a tree that is not the layer is left for an
// unpack of the blob, and the trees are let go once linked.
func TestLowersLinkBuildTrees(t *testing.T) {
	ci.Root(t, "hard links owned by other users, device nodes and trusted.* attributes")
	ctx := context.Background()
	store, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	bottom, top := layerTree(t, false), layerTree(t, true)
	lb, err := layer.Put(ctx, store, bottom, layer.WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	lt, err := layer.Put(ctx, store, top, layer.WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	art, err := layer.PutList(ctx, store, []kiln.Layer{lb, lt})
	if err != nil {
		t.Fatal(err)
	}
	// What unpacking the blobs gives, for comparison.
	unpacked := map[string]map[string]string{}
	for _, l := range []kiln.Layer{lb, lt} {
		dir := t.TempDir()
		r, err := layer.Open(ctx, store, l)
		if err != nil {
			t.Fatal(err)
		}
		if err := layer.ExtractTar(ctx, r, dir, layer.ExtractOptions{Layer: true}); err != nil {
			t.Fatal(err)
		}
		r.Close()
		unpacked[l.DiffID] = entries(t, dir)
	}
	newPlatform := func(trees kiln.LayerTrees) *Platform {
		return &Platform{dataDir: t.TempDir(), artifacts: store, trees: trees, log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	}

	t.Run("linked", func(t *testing.T) {
		trees := &fakeTrees{dirs: []string{bottom, top}}
		p := newPlatform(trees)
		lowers, err := p.lowers(ctx, *art)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{p.layerDir(lt), p.layerDir(lb)}
		if !slices.Equal(lowers, want) {
			t.Fatalf("lowers = %v, want %v", lowers, want)
		}
		if trees.calls != 1 || trees.releases != 1 {
			t.Errorf("trees asked %d times and released %d times, want 1 and 1", trees.calls, trees.releases)
		}
		for _, l := range []kiln.Layer{lb, lt} {
			got := entries(t, p.layerDir(l))
			if fmt.Sprint(got) != fmt.Sprint(unpacked[l.DiffID]) {
				t.Errorf("layer %s linked:\n%v\nunpacked:\n%v", l.DiffID, got, unpacked[l.DiffID])
			}
		}
		if _, err := os.Lstat(filepath.Join(p.layerDir(lb), "etc/null")); err == nil {
			t.Error("the device node was linked; the layer format leaves it out")
		}
		if ino(t, filepath.Join(p.layerDir(lb), "etc/app/conf")) != ino(t, filepath.Join(bottom, "etc/app/conf")) {
			t.Error("etc/app/conf is a copy, not a hard link to the build's tree")
		}
		if ino(t, filepath.Join(p.layerDir(lt), "etc/gone")) != ino(t, filepath.Join(top, "etc/gone")) {
			t.Error("the whiteout is not linked")
		}
		// Removing the build's tree (kiln cache prune) leaves the copy whole.
		if err := os.RemoveAll(top); err != nil {
			t.Fatal(err)
		}
		if got := entries(t, p.layerDir(lt)); fmt.Sprint(got) != fmt.Sprint(unpacked[lt.DiffID]) {
			t.Errorf("after the build's tree went: %v", got)
		}
		// Cached now: the next launch asks for nothing.
		if _, err := p.lowers(ctx, *art); err != nil {
			t.Fatal(err)
		}
		if trees.calls != 1 {
			t.Errorf("trees asked %d times with every layer cached, want 1", trees.calls)
		}
	})

	t.Run("not the layer", func(t *testing.T) {
		wrong := layerTree(t, false)
		if err := os.WriteFile(filepath.Join(wrong, "etc/app/conf"), []byte("a = 2\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(wrong, "etc/app/conf"), 0, 42); err != nil {
			t.Fatal(err)
		}
		trees := &fakeTrees{dirs: []string{wrong, ""}}
		p := newPlatform(trees)
		if _, err := p.lowers(ctx, *art); err != nil {
			t.Fatal(err)
		}
		if trees.releases != 1 {
			t.Errorf("released %d times, want 1", trees.releases)
		}
		for _, l := range []kiln.Layer{lb, lt} {
			if got := entries(t, p.layerDir(l)); fmt.Sprint(got) != fmt.Sprint(unpacked[l.DiffID]) {
				t.Errorf("layer %s:\n%v\nunpacked:\n%v", l.DiffID, got, unpacked[l.DiffID])
			}
		}
		b, err := os.ReadFile(filepath.Join(p.layerDir(lb), "etc/app/conf"))
		if err != nil || string(b) != "a = 1\n" {
			t.Errorf("etc/app/conf = %q, %v; want the layer's", b, err)
		}
		left, _ := filepath.Glob(filepath.Join(p.dataDir, "layers", ".tmp-*"))
		if len(left) > 0 {
			t.Errorf("temporary directories left: %v", left)
		}
	})

	t.Run("lookup fails", func(t *testing.T) {
		p := newPlatform(&fakeTrees{err: fmt.Errorf("cache unreadable")})
		if _, err := p.lowers(ctx, *art); err != nil {
			t.Fatalf("a failed lookup must only mean unpacking: %v", err)
		}
		if got := entries(t, p.layerDir(lt)); fmt.Sprint(got) != fmt.Sprint(unpacked[lt.DiffID]) {
			t.Errorf("unpacked layer: %v", got)
		}
	})
}

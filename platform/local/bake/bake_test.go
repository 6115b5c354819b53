package bake

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/internal/overlayfs"
)

func needRoot(t *testing.T) {
	t.Helper()
	ci.Root(t, "mounting overlays")
}

func TestManifest(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
	b, _ := os.ReadFile("testdata/status")
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), b, 0o644)
	got, err := Manifest(root)
	if err != nil {
		t.Fatal(err)
	}
	want := []kiln.Package{
		{Name: "base-files", Version: "12.4+deb12u5", Architecture: "amd64"},
		{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "amd64", Source: "glibc"},
		{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "i386", Source: "glibc"},
		{Name: "libssl3", Version: "3.0.11-1~deb12u2+b1", Architecture: "amd64", Source: "openssl", SourceVersion: "3.0.11-1~deb12u2"},
	}
	if len(got) != len(want) {
		t.Fatalf("Manifest = %+v, want %+v (hello only has config files left)", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("package %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLookupOwner(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\nadm:x:4:\n"), 0o644)
	for _, tc := range []struct {
		owner    string
		uid, gid int
		err      string
	}{
		{"root:root", 0, 0, ""},
		{"www-data", 33, 33, ""},
		{"www-data:adm", 33, 4, ""},
		{"1000:1000", 1000, 1000, ""},
		{"nobody", 0, 0, `user "nobody" does not exist in the image`},
		{"root:wheel", 0, 0, `group "wheel" does not exist`},
	} {
		uid, gid, err := LookupOwner(root, tc.owner)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("LookupOwner(%q) error %v, want %q", tc.owner, err, tc.err)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid {
			t.Errorf("LookupOwner(%q) = %d, %d, %v; want %d, %d", tc.owner, uid, gid, err, tc.uid, tc.gid)
		}
	}
}

// A layer made on an overlay (deleting a file, replacing a directory,
// adding files with owners, modes, xattrs and hard links) survives the
// trip through a tarball: stacked again, it shows the same tree.
func TestLayerRoundTrip(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	base := t.TempDir()
	write := func(p, s string, mode os.FileMode) {
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(base, "etc/gone"), "old", 0o644)
	write(filepath.Join(base, "opt/app/old-a"), "a", 0o644)
	write(filepath.Join(base, "opt/app/old-b"), "b", 0o644)
	write(filepath.Join(base, "etc/kept"), "kept", 0o644)

	dir := t.TempDir()
	o := &overlayfs.Overlay{Lowers: []string{base}, Upper: filepath.Join(dir, "upper"), Work: filepath.Join(dir, "work"), Target: filepath.Join(dir, "merged")}
	if err := o.Mount(); err != nil {
		t.Fatal(err)
	}
	m := o.Target
	os.Remove(filepath.Join(m, "etc/gone"))
	os.RemoveAll(filepath.Join(m, "opt/app"))
	os.MkdirAll(filepath.Join(m, "opt/app"), 0o750)
	write(filepath.Join(m, "opt/app/new"), "new", 0o4755)
	os.Chown(filepath.Join(m, "opt/app/new"), 33, 4)
	unix.Chmod(filepath.Join(m, "opt/app/new"), 0o4755)
	os.Link(filepath.Join(m, "opt/app/new"), filepath.Join(m, "opt/app/link"))
	os.Symlink("../etc/kept", filepath.Join(m, "opt/kept-link"))
	if err := unix.Lsetxattr(filepath.Join(m, "opt/app/new"), "user.kiln", []byte("yes"), 0); err != nil {
		t.Logf("no user xattrs here: %v", err)
	}
	if err := overlayfs.Unmount(m); err != nil {
		t.Fatal(err)
	}

	var lt bytes.Buffer
	if err := layer.WriteTar(ctx, o.Upper, &lt, layer.WriteOptions{Layer: true}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"etc/.wh.gone", "opt/app/.wh..wh..opq"} {
		if !bytes.Contains(lt.Bytes(), []byte(want)) {
			t.Errorf("layer tar lacks whiteout %s", want)
		}
	}
	unpacked := filepath.Join(t.TempDir(), "layer")
	if err := layer.ExtractTar(ctx, bytes.NewReader(lt.Bytes()), unpacked, layer.ExtractOptions{Layer: true}); err != nil {
		t.Fatal(err)
	}
	ro := &overlayfs.Overlay{Lowers: []string{unpacked, base}, Target: filepath.Join(t.TempDir(), "view")}
	if err := ro.Mount(); err != nil {
		t.Fatal(err)
	}
	defer overlayfs.Unmount(ro.Target)
	v := ro.Target
	if _, err := os.Stat(filepath.Join(v, "etc/gone")); !os.IsNotExist(err) {
		t.Errorf("etc/gone still visible: %v", err)
	}
	if _, err := os.Stat(filepath.Join(v, "opt/app/old-a")); !os.IsNotExist(err) {
		t.Errorf("opaque directory shows the old opt/app/old-a: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(v, "opt/app/new"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 33 || st.Gid != 4 || st.Mode&0o7777 != 0o4755 || st.Nlink != 2 {
		t.Errorf("opt/app/new: uid %d gid %d mode %o nlink %d; want 33 4 4755 2", st.Uid, st.Gid, st.Mode&0o7777, st.Nlink)
	}
	if l, _ := os.Readlink(filepath.Join(v, "opt/kept-link")); l != "../etc/kept" {
		t.Errorf("symlink = %q", l)
	}
	if b, _ := os.ReadFile(filepath.Join(v, "etc/kept")); string(b) != "kept" {
		t.Errorf("etc/kept = %q", b)
	}

	// The full tree of the stacked view has no whiteouts left.
	var full bytes.Buffer
	if err := layer.WriteTar(ctx, v, &full, layer.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(full.Bytes(), []byte(".wh.")) {
		t.Error("the flattened tree contains whiteout entries")
	}
	flat := t.TempDir()
	if err := layer.ExtractTar(ctx, &full, flat, layer.ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(flat, "opt/app/link")); string(b) != "new" {
		t.Errorf("hard link in the flattened tree = %q", b)
	}
}

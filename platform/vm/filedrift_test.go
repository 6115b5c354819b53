package vm

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/filedrift"
)

// TestDescribeRoot describes an ext4 image made from a tree with what a
// dump loses or leaves out (setuid and setgid bits, other owners, a FIFO,
// hard links, a name with a space) and checks the manifest says what the
// tree says, and that the tree compared with it shows no drift.
func TestDescribeRoot(t *testing.T) {
	ci.Root(t, "describing an ext4 image keeps owners")
	mkfs := ci.Tool(t, "mkfs.ext4", "e2fsprogs")
	debugfs := ci.Tool(t, "debugfs", "e2fsprogs")
	src := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/bin", "etc/kiln", "var/mail", "tmp", "srv/a dir"} {
		must(os.MkdirAll(filepath.Join(src, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(src, "usr/bin/su"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(src, "usr/bin/su"), 0o4755))
	must(os.Chmod(filepath.Join(src, "var/mail"), 0o2775))
	must(os.Chown(filepath.Join(src, "var/mail"), 0, 8))
	must(os.Chmod(filepath.Join(src, "tmp"), 0o1777))
	must(os.WriteFile(filepath.Join(src, "etc/kiln/volatile"), []byte("/srv/cache\n"), 0o644))
	must(os.WriteFile(filepath.Join(src, "srv/a dir/owned"), []byte("data"), 0o640))
	must(os.Chown(filepath.Join(src, "srv/a dir/owned"), 1000, 1001))
	must(os.Link(filepath.Join(src, "srv/a dir/owned"), filepath.Join(src, "srv/hardlink")))
	must(os.Symlink("../usr/bin/su", filepath.Join(src, "etc/su-link")))
	must(syscall.Mkfifo(filepath.Join(src, "srv/fifo"), 0o600))
	img := filepath.Join(t.TempDir(), "root.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-t", "ext4", "-d", src, img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	ctx := context.Background()
	m, err := describeRoot(ctx, debugfs, img, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want, err := filedrift.FromTree(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	want.Entries = append(want.Entries, filedrift.Entry{Path: "/lost+found", Mode: os.ModeDir | 0o700})
	want.Sort()
	for _, e := range want.Entries {
		got := m.Lookup(e.Path)
		if got == nil {
			t.Errorf("manifest lacks %s", e.Path)
		} else if *got != e {
			t.Errorf("manifest says %+v; the tree %+v", *got, e)
		}
	}
	if len(m.Entries) != len(want.Entries) {
		t.Errorf("manifest has %d entries, the tree %d", len(m.Entries), len(want.Entries))
	}
	if !slices.Equal(m.Volatile, []string{"/srv/cache"}) {
		t.Errorf("volatile patterns %q; want the image's [/srv/cache]", m.Volatile)
	}
	if now := time.Now().Unix(); m.Stamp <= 0 || m.Stamp > now {
		t.Errorf("stamp %d; want the root inode's change time (≤ %d)", m.Stamp, now)
	}
	must(os.Mkdir(filepath.Join(src, "lost+found"), 0o700))
	res, err := filedrift.Compare(ctx, src, m, filedrift.Options{Skip: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 0 {
		t.Errorf("the tree the image was made from, against the image's manifest: %+v; want no drift", res.Files)
	}
}

// TestPruneImagesRemovesManifest: pruning a cached image removes the
// manifest drift made of it, and keeps an image in use with its own.
func TestPruneImagesRemovesManifest(t *testing.T) {
	dir := t.TempDir()
	p := &Platform{dataDir: dir}
	images := filepath.Join(dir, "images")
	used, unused := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, f := range []string{used, used + filesSuffix, unused, unused + filesSuffix} {
		if err := os.MkdirAll(images, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(images, f), []byte("x"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	inst := p.instanceDir("web-1")
	if err := os.MkdirAll(inst, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := writeRecord(inst, &record{ID: "web-1", Base: filepath.Join(images, used)}); err != nil {
		t.Fatal(err)
	}
	removed, err := p.PruneImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(removed, []string{"sha256:" + unused}) {
		t.Errorf("removed %q; want the unused image alone", removed)
	}
	for f, want := range map[string]bool{used: true, used + filesSuffix: true, unused: false, unused + filesSuffix: false} {
		if _, err := os.Stat(filepath.Join(images, f)); (err == nil) != want {
			t.Errorf("%s: present = %v; want %v", f, err == nil, want)
		}
	}
}

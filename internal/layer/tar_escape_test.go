package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
)

// entry is one member of an archive the tests craft by hand.
type entry struct {
	name string
	typ  byte
	link string // symlink or hard link target
	body string
	mode int64
	uid  int
}

// archive writes entries as a tar, owned by the caller unless uid is set,
// so that the escape tests run without root.
func archive(t *testing.T, entries ...entry) *bytes.Reader {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode,
			Uid: os.Getuid(), Gid: os.Getgid(), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		if e.uid != 0 {
			hdr.Uid, hdr.Gid = e.uid, e.uid
		}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
			if e.typ == tar.TypeDir {
				hdr.Mode = 0o755
			}
		}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b.Bytes())
}

func TestExtractTarRefusesEscapes(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "a", "b", "image")
	rel, err := filepath.Rel(dst, host) // ../../../../…/host
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		before  func(t *testing.T, dst string) // what is already in dst
		entries []entry
		want    []string // in the error message
	}{{
		name: "absolute symlink, then a file through it",
		entries: []entry{
			{name: "x", typ: tar.TypeSymlink, link: host},
			{name: "x/pwned", typ: tar.TypeReg, body: "pwned"},
		},
		want: []string{"tar entry x/pwned", "symlink x (to " + host + ")", "outside the image"},
	}, {
		name: "absolute symlink, then a directory and a file below it",
		entries: []entry{
			{name: "x", typ: tar.TypeSymlink, link: host},
			{name: "x/sub/", typ: tar.TypeDir},
			{name: "x/sub/pwned", typ: tar.TypeReg, body: "pwned"},
		},
		want: []string{"tar entry x/sub", "symlink x"},
	}, {
		name: "relative symlink climbing out, then a file through it",
		entries: []entry{
			{name: "etc/", typ: tar.TypeDir},
			{name: "etc/x", typ: tar.TypeSymlink, link: "../" + rel},
			{name: "etc/x/pwned", typ: tar.TypeReg, body: "pwned"},
		},
		want: []string{"tar entry etc/x/pwned", "symlink etc/x", "outside the image"},
	}, {
		name: "relative symlink ../../.., then a file through it",
		entries: []entry{
			{name: "x", typ: tar.TypeSymlink, link: "../../.."},
			{name: "x/pwned", typ: tar.TypeReg, body: "pwned"},
		},
		want: []string{"tar entry x/pwned", "symlink x (to ../../..)"},
	}, {
		name: "chain of an inside link to an outside link",
		entries: []entry{
			{name: "y", typ: tar.TypeSymlink, link: host},
			{name: "x", typ: tar.TypeSymlink, link: "y"},
			{name: "x/pwned", typ: tar.TypeReg, body: "pwned"},
		},
		want: []string{"tar entry x/pwned", "symlink x"},
	}, {
		name: "symlink already in the directory",
		before: func(t *testing.T, dst string) {
			if err := os.Symlink(host, filepath.Join(dst, "x")); err != nil {
				t.Fatal(err)
			}
		},
		entries: []entry{{name: "x/pwned", typ: tar.TypeReg, body: "pwned"}},
		want:    []string{"tar entry x/pwned", "symlink x"},
	}, {
		name: "symlink, then a symlink through it",
		entries: []entry{
			{name: "x", typ: tar.TypeSymlink, link: host},
			{name: "x/pwned", typ: tar.TypeSymlink, link: "/etc/shadow"},
		},
		want: []string{"tar entry x/pwned", "symlink x"},
	}, {
		name: "hard link through an absolute symlink",
		entries: []entry{
			{name: "y", typ: tar.TypeSymlink, link: host},
			{name: "pwned", typ: tar.TypeLink, link: "y/secret"},
		},
		want: []string{"tar entry pwned is a hard link to y/secret", "symlink y", "outside the image"},
	}, {
		name: "hard link through a relative symlink climbing out",
		entries: []entry{
			{name: "y", typ: tar.TypeSymlink, link: rel},
			{name: "pwned", typ: tar.TypeLink, link: "y/secret"},
		},
		want: []string{"tar entry pwned is a hard link to y/secret", "symlink y"},
	}, {
		name:    "hard link to a path above the root",
		entries: []entry{{name: "pwned", typ: tar.TypeLink, link: "../" + rel + "/secret"}},
		want:    []string{"tar entry pwned is a hard link to", "outside the image"},
	}, {
		name:    "entry above the root",
		entries: []entry{{name: "../" + rel + "/pwned", typ: tar.TypeReg, body: "pwned"}},
		want:    []string{"leaves the root"},
	}} {
		// The same refusals whether the tar is unpacked as a root
		// filesystem, as an overlay layer or applied onto a tree.
		for _, mode := range []struct {
			name string
			opts ExtractOptions
		}{{"tree", ExtractOptions{}}, {"layer", ExtractOptions{Layer: true}}, {"apply", ExtractOptions{Apply: true}}} {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				if err := os.RemoveAll(dst); err != nil {
					t.Fatal(err)
				}
				if err := os.MkdirAll(dst, 0o755); err != nil {
					t.Fatal(err)
				}
				if tc.before != nil {
					tc.before(t, dst)
				}
				err := ExtractTar(context.Background(), archive(t, tc.entries...), dst, mode.opts)
				if err == nil {
					t.Fatal("ExtractTar succeeded; want a refusal")
				}
				t.Logf("refused: %v", err)
				if kiln.ErrorCode(err) != kiln.EINVALID {
					t.Errorf("error code %q, want %q: %v", kiln.ErrorCode(err), kiln.EINVALID, err)
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				got, err := os.ReadDir(host)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got[0].Name() != "secret" {
					t.Errorf("the host directory now holds %v; want only secret", got)
				}
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(host, "secret"), &st); err != nil {
					t.Fatal(err)
				}
				if st.Nlink != 1 {
					t.Errorf("the host's secret has %d links; the image linked it", st.Nlink)
				}
			})
		}
	}
}

func TestExtractTarInsideLinks(t *testing.T) {
	needRoot(t)
	entries := []entry{
		{name: "usr/", typ: tar.TypeDir},
		{name: "usr/lib/", typ: tar.TypeDir},
		{name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		// Through a relative link that stays inside: allowed.
		{name: "lib/libfoo.so.1", typ: tar.TypeReg, body: "elf"},
		{name: "usr/lib/libfoo.so", typ: tar.TypeLink, link: "lib/libfoo.so.1"},
		{name: "usr/bin/", typ: tar.TypeDir},
		{name: "usr/bin/su", typ: tar.TypeReg, body: "su", mode: 0o4755, uid: 33},
		// Absolute links are created, not followed.
		{name: "var/", typ: tar.TypeDir},
		{name: "var/run", typ: tar.TypeSymlink, link: "/run"},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/localtime", typ: tar.TypeSymlink, link: "/usr/share/zoneinfo/Etc/UTC"},
		{name: "etc/mtab", typ: tar.TypeSymlink, link: "../proc/self/mounts"},
		{name: "etc/.wh.gone", typ: tar.TypeReg},
		{name: "opt/", typ: tar.TypeDir},
		{name: "opt/.wh..wh..opq", typ: tar.TypeReg},
		// A directory replaced by a link after files were written in it:
		// the next file goes where the link now leads.
		{name: "srv/", typ: tar.TypeDir},
		{name: "srv/old", typ: tar.TypeReg, body: "old"},
		{name: "srv", typ: tar.TypeSymlink, link: "opt"},
		{name: "srv/new", typ: tar.TypeReg, body: "new"},
	}
	for _, layer := range []bool{false, true} {
		name := "plain"
		if layer {
			name = "layer"
		}
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			if err := ExtractTar(context.Background(), archive(t, entries...), dst, ExtractOptions{Layer: layer}); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "usr/lib/libfoo.so.1")); string(b) != "elf" {
				t.Errorf("usr/lib/libfoo.so.1 = %q, want the file written through lib", b)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(dst, "usr/lib/libfoo.so"), &st); err != nil || st.Nlink != 2 {
				t.Errorf("usr/lib/libfoo.so: nlink %d, %v; want a hard link (2)", st.Nlink, err)
			}
			if err := unix.Lstat(filepath.Join(dst, "usr/bin/su"), &st); err != nil {
				t.Fatal(err)
			}
			if st.Uid != 33 || st.Gid != 33 || st.Mode&0o7777 != 0o4755 {
				t.Errorf("usr/bin/su: uid %d gid %d mode %o; want 33 33 4755", st.Uid, st.Gid, st.Mode&0o7777)
			}
			if st.Mtim.Sec != 1700000000 {
				t.Errorf("usr/bin/su mtime %d", st.Mtim.Sec)
			}
			for p, want := range map[string]string{"var/run": "/run", "etc/localtime": "/usr/share/zoneinfo/Etc/UTC", "etc/mtab": "../proc/self/mounts", "srv": "opt"} {
				if got, err := os.Readlink(filepath.Join(dst, p)); got != want {
					t.Errorf("%s -> %q (%v); want %q", p, got, err, want)
				}
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "opt/new")); string(b) != "new" {
				t.Errorf("opt/new = %q; want the file written through the srv link", b)
			}
			if err := unix.Lstat(filepath.Join(dst, "usr"), &st); err != nil || st.Mtim.Sec != 1700000000 {
				t.Errorf("usr mtime %d (%v); directory times are set last", st.Mtim.Sec, err)
			}
			gone := filepath.Join(dst, "etc/gone")
			opaque := make([]byte, 1)
			n, xerr := unix.Lgetxattr(filepath.Join(dst, "opt"), opaqueXattr, opaque)
			if !layer {
				if _, err := os.Lstat(gone); err == nil {
					t.Error("plain extraction made a whiteout")
				}
				if fi, err := os.Lstat(filepath.Join(dst, "etc/.wh.gone")); err != nil || !fi.Mode().IsRegular() {
					t.Errorf("plain extraction: etc/.wh.gone is %v, %v; want the file as it is", fi, err)
				}
				if xerr == nil {
					t.Error("plain extraction marked opt opaque")
				}
				return
			}
			if err := unix.Lstat(gone, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("etc/gone: mode %o rdev %d (%v); want a 0/0 character device", st.Mode, st.Rdev, err)
			}
			if _, err := os.Lstat(filepath.Join(dst, "etc/.wh.gone")); err == nil {
				t.Error("layer extraction kept the .wh. file")
			}
			if xerr != nil || string(opaque[:n]) != "y" {
				t.Errorf("opt opaque xattr = %q, %v; want y", opaque[:n], xerr)
			}
		})
	}
}

// A layer over a tree that has a file, a directory and a symlink where the
// layer puts something else replaces them, and a whiteout of a symlink
// removes the link, not what it points at.
func TestExtractTarReplaces(t *testing.T) {
	needRoot(t)
	dst, host := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "keep"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d/inner", "f"} {
		if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, p), []byte("lower"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"l", "w"} {
		if err := os.Symlink(host, filepath.Join(dst, l)); err != nil {
			t.Fatal(err)
		}
	}
	err := ExtractTar(context.Background(), archive(t,
		entry{name: "d", typ: tar.TypeReg, body: "now a file"},
		entry{name: "f/", typ: tar.TypeDir},
		entry{name: "f/x", typ: tar.TypeReg, body: "x"},
		entry{name: "l/", typ: tar.TypeDir},
		entry{name: "l/keep", typ: tar.TypeReg, body: "image"},
		entry{name: ".wh.w", typ: tar.TypeReg},
	), dst, ExtractOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"d": "now a file", "f/x": "x", "l/keep": "image"} {
		if b, err := os.ReadFile(filepath.Join(dst, p)); string(b) != want {
			t.Errorf("%s = %q (%v); want %q", p, b, err, want)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(host, "keep")); string(b) != "host" {
		t.Errorf("the host's file became %q", b)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dst, "w"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("w: mode %o (%v); want a whiteout", st.Mode, err)
	}
	if _, err := os.Stat(host); err != nil {
		t.Errorf("whiteout of a link removed its target: %v", err)
	}
}

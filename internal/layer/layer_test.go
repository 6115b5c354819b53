package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
)

func needRoot(t *testing.T) {
	t.Helper()
	ci.Root(t, "owning files, whiteouts and trusted xattrs")
}

func writeFile(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// tree makes a small root filesystem with every kind of entry the writer
// handles, and old times.
func tree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n", 0o644)
	writeFile(t, filepath.Join(dir, "usr/bin/tool"), "#!/bin/sh\n", 0o755)
	writeFile(t, filepath.Join(dir, "b/z"), "z", 0o600)
	writeFile(t, filepath.Join(dir, "b/a"), "a", 0o600)
	if err := os.Link(filepath.Join(dir, "usr/bin/tool"), filepath.Join(dir, "usr/bin/tool2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../etc/passwd", filepath.Join(dir, "usr/passwd")); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 600, time.UTC)
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		_ = unix.Lutimes(p, []unix.Timeval{unix.NsecToTimeval(old.UnixNano()), unix.NsecToTimeval(old.UnixNano())})
		return nil
	})
	return dir
}

func store(t *testing.T) *artifact.Store {
	t.Helper()
	s, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutIsReproducible(t *testing.T) {
	ctx := context.Background()
	a, b := tree(t), tree(t)
	// The same content in another place, written later, with other atimes:
	// only what the layer records may count.
	time.Sleep(10 * time.Millisecond)
	sa, sb := store(t), store(t)
	la, err := Put(ctx, sa, a, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lb, err := Put(ctx, sb, b, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if la != lb {
		t.Fatalf("two writes of the same tree: %+v and %+v", la, lb)
	}
	if la.MediaType != kiln.LayerMediaTypeGzip || la.Digest == la.DiffID {
		t.Errorf("layer %+v: want a gzip blob whose digest differs from its diff ID", la)
	}
	blob := func(s *artifact.Store) []byte {
		p, _ := s.Path(la.Digest)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if !bytes.Equal(blob(sa), blob(sb)) {
		t.Error("the gzip bytes of two writes differ")
	}
	gz := blob(sa)
	if gz[0] != 0x1f || gz[1] != 0x8b || !bytes.Equal(gz[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("gzip header % x: want magic and a zero mtime", gz[:10])
	}

	// Entries are in name order, owners numeric, times whole seconds.
	rc, err := Open(ctx, sa, la)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.ModTime.Nanosecond() != 0 {
			t.Errorf("%s: uname %q gname %q atime %v ctime %v mtime %v", h.Name, h.Uname, h.Gname, h.AccessTime, h.ChangeTime, h.ModTime)
		}
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("verified read: %v", err)
	}
	want := "b/ b/a b/z etc/ etc/passwd usr/ usr/bin/ usr/bin/tool usr/bin/tool2 usr/passwd"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("entries %s\nwant    %s", got, want)
	}

	// A changed file changes both digests.
	writeFile(t, filepath.Join(b, "b/a"), "A", 0o600)
	lc, err := Put(ctx, sb, b, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if lc.Digest == la.Digest || lc.DiffID == la.DiffID {
		t.Error("a changed tree gave the same layer")
	}
}

func TestOpenVerifiesDiffID(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	l, err := Put(ctx, s, tree(t), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bad := l
	bad.DiffID = "sha256:" + strings.Repeat("0", 64)
	rc, err := Open(ctx, s, bad)
	if err != nil {
		t.Fatal(err)
	}
	// Close alone (a reader that stopped early) still verifies.
	if err := rc.Close(); err == nil || !strings.Contains(err.Error(), "diff ID") {
		t.Fatalf("Close = %v, want a diff ID mismatch", err)
	}
	rc, _ = Open(ctx, s, bad)
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("reading a layer with a wrong diff ID to its end succeeded")
	}
	rc.Close()

	// An uncompressed single tar reads as a layer too.
	var buf bytes.Buffer
	if err := WriteTar(ctx, tree(t), &buf, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := s.Put(ctx, bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	rc, err = Open(ctx, s, Tar(a))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, buf.Bytes()) {
		t.Errorf("plain tar layer: %d bytes, %v", len(got), err)
	}
	if err := rc.Close(); err != nil {
		t.Error(err)
	}
}

func TestLayerList(t *testing.T) {
	ctx := context.Background()
	s := store(t)
	l1, err := Put(ctx, s, tree(t), WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	top := t.TempDir()
	writeFile(t, filepath.Join(top, "etc/motd"), "hi", 0o644)
	l2, err := Put(ctx, s, top, WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	a, err := PutList(ctx, s, []kiln.Layer{l1, l2})
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != l1.Size+l2.Size || len(a.Layers) != 2 || !strings.HasPrefix(a.Ref, "local:sha256:") {
		t.Errorf("artifact %+v", a)
	}
	again, err := PutList(ctx, s, []kiln.Layer{l1, l2})
	if err != nil || again.Digest != a.Digest {
		t.Errorf("the same list gave digest %s (%v), then %s", a.Digest, err, again.Digest)
	}
	got, err := Layers(ctx, s, a)
	if err != nil || len(got) != 2 || got[1] != l2 {
		t.Fatalf("Layers = %+v, %v", got, err)
	}
	// Layers recorded in the database that the signed list does not name
	// are refused.
	forged := *a
	forged.Layers = []kiln.Layer{l1}
	if _, err := Layers(ctx, s, &forged); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("forged layers: %v, want conflict", err)
	}
	// A single tar is one uncompressed layer.
	single := &kiln.Artifact{Ref: "local:" + l1.Digest, Digest: l1.Digest, Size: l1.Size}
	if got, err := Layers(ctx, s, single); err != nil || len(got) != 1 || got[0].MediaType != kiln.LayerMediaTypeTar {
		t.Errorf("single tar: %+v, %v", got, err)
	}
}

// TestWhiteouts writes an overlay upper directory (a 0/0 character device
// for a deleted file, the opaque xattr for a replaced directory) and
// applies the layer onto its lower tree.
func TestWhiteouts(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	s := store(t)
	lower := t.TempDir()
	writeFile(t, filepath.Join(lower, "etc/gone"), "old", 0o644)
	writeFile(t, filepath.Join(lower, "etc/kept"), "kept", 0o644)
	writeFile(t, filepath.Join(lower, "opt/app/old"), "old", 0o644)
	base, err := Put(ctx, s, lower, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}

	upper := t.TempDir()
	if err := os.MkdirAll(filepath.Join(upper, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(upper, "etc/gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(upper, "opt/app/new"), "new", 0o644)
	if err := unix.Setxattr(filepath.Join(upper, "opt/app"), opaqueXattr, []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	top, err := Put(ctx, s, upper, WriteOptions{Layer: true})
	if err != nil {
		t.Fatal(err)
	}
	names := entryNames(t, s, top)
	for _, want := range []string{"etc/.wh.gone", "opt/app/.wh..wh..opq", "opt/app/new"} {
		if !strings.Contains(" "+names+" ", " "+want+" ") {
			t.Errorf("layer entries %q lack %s", names, want)
		}
	}
	if strings.Contains(names, "trusted.overlay") {
		t.Error("overlay xattrs leaked into the layer")
	}

	// Applied bottom first into one directory: the merged tree.
	flat := t.TempDir()
	for _, l := range []kiln.Layer{base, top} {
		rc, err := Open(ctx, s, l)
		if err != nil {
			t.Fatal(err)
		}
		if err := ExtractTar(ctx, rc, flat, ExtractOptions{Apply: true}); err != nil {
			t.Fatal(err)
		}
		if err := rc.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for p, want := range map[string]string{"etc/kept": "kept", "opt/app/new": "new", "etc/gone": "", "opt/app/old": "", "opt/app/.wh..wh..opq": "", "etc/.wh.gone": ""} {
		b, err := os.ReadFile(filepath.Join(flat, p))
		switch {
		case want == "" && !os.IsNotExist(err):
			t.Errorf("%s: still there after applying the layers (%v)", p, err)
		case want != "" && string(b) != want:
			t.Errorf("%s = %q (%v), want %q", p, b, err, want)
		}
	}

	// Unpacked for an overlay stack: whiteouts become overlay whiteouts.
	od := t.TempDir()
	rc, _ := Open(ctx, s, top)
	if err := ExtractTar(ctx, rc, od, ExtractOptions{Layer: true}); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(od, "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone in the unpacked layer: mode %o rdev %d (%v); want a 0/0 character device", st.Mode, st.Rdev, err)
	}
	if v, err := unix.Getxattr(filepath.Join(od, "opt/app"), opaqueXattr, make([]byte, 8)); err != nil || v != 1 {
		t.Errorf("opt/app is not opaque in the unpacked layer (%v)", err)
	}
}

// TestApplyRefusesEscapes: a layer's whiteout must not remove anything
// outside the directory it is applied to, through a symlink an earlier
// layer planted (compare rootfs_escape_test.go in platform/local).
func TestApplyRefusesEscapes(t *testing.T) {
	ctx := context.Background()
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "secret"), "host", 0o600)
	dst := filepath.Join(t.TempDir(), "root")

	first := archive(t, entry{name: "etc", typ: tar.TypeSymlink, link: host})
	if err := ExtractTar(ctx, first, dst, ExtractOptions{Apply: true}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []entry{
		{name: "etc/.wh.secret", typ: tar.TypeReg},
		{name: "etc/.wh..wh..opq", typ: tar.TypeReg},
		{name: "../.wh.secret", typ: tar.TypeReg},
		{name: ".wh..", typ: tar.TypeReg},
	} {
		err := ExtractTar(ctx, archive(t, e), dst, ExtractOptions{Apply: true})
		if err == nil {
			t.Errorf("%s: applied; want a refusal", e.name)
		}
		if b, rerr := os.ReadFile(filepath.Join(host, "secret")); rerr != nil || string(b) != "host" {
			t.Fatalf("%s: the host's file is gone or changed (%q, %v); the layer reached outside the root", e.name, b, rerr)
		}
	}
}

func entryNames(t *testing.T, s kiln.ArtifactStore, l kiln.Layer) string {
	t.Helper()
	rc, err := Open(context.Background(), s, l)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return strings.Join(out, " ")
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h.Name)
		for k := range h.PAXRecords {
			out = append(out, k)
		}
	}
}

// Zstd layers are reproducible too: the same tree gives the same blob on
// another machine (another CPU count), the DiffID is the gzip layer's (the
// same tar), and the blob reads back verified.
func TestPutZstdIsReproducible(t *testing.T) {
	ctx := context.Background()
	a, b := tree(t), tree(t)
	// Several zstd blocks (128 KiB each), compressible but not trivially.
	var big bytes.Buffer
	for i := 0; big.Len() < 3<<20; i++ {
		fmt.Fprintf(&big, "line %d of a file with %x in it\n", i, i*i*7919)
	}
	writeFile(t, filepath.Join(a, "usr/share/big"), big.String(), 0o644)
	writeFile(t, filepath.Join(b, "usr/share/big"), big.String(), 0o644)
	for _, d := range []string{a, b} {
		_ = unix.Lutimes(filepath.Join(d, "usr/share/big"), []unix.Timeval{{Sec: 1577934245}, {Sec: 1577934245}})
		_ = unix.Lutimes(filepath.Join(d, "usr/share"), []unix.Timeval{{Sec: 1577934245}, {Sec: 1577934245}})
		_ = unix.Lutimes(filepath.Join(d, "usr"), []unix.Timeval{{Sec: 1577934245}, {Sec: 1577934245}})
	}
	sa, sb := store(t), store(t)
	za, err := Put(ctx, sa, a, WriteOptions{Compression: Zstd})
	if err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(1) // another machine
	zb, err := Put(ctx, sb, b, WriteOptions{Compression: Zstd})
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	if za != zb {
		t.Fatalf("two zstd writes of the same tree: %+v and %+v", za, zb)
	}
	if za.MediaType != kiln.LayerMediaTypeZstd || za.Digest == za.DiffID {
		t.Errorf("layer %+v: want a zstd blob whose digest differs from its diff ID", za)
	}
	p, _ := sa.Path(za.Digest)
	blob, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(blob[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Errorf("zstd magic % x", blob[:4])
	}
	gz, err := Put(ctx, sa, a, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if gz.MediaType != kiln.LayerMediaTypeGzip || gz.DiffID != za.DiffID || gz.Digest == za.Digest {
		t.Errorf("gzip %+v and zstd %+v of one tree: want the same diff ID, other blobs", gz, za)
	}
	if got, want := entryNames(t, sa, za), entryNames(t, sa, gz); got != want {
		t.Errorf("zstd layer entries %s, gzip %s", got, want)
	}

	// A zstd blob altered in the store: the verified read fails.
	bad := bytes.Clone(blob)
	bad[len(bad)/2] ^= 0xff
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(ctx, sa, za)
	if err == nil {
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		t.Error("a corrupted zstd layer read without error")
	}
}

func TestParseCompression(t *testing.T) {
	for in, want := range map[string]Compression{"": Gzip, "gzip": Gzip, "zstd": Zstd} {
		if got, err := ParseCompression("layer-compression", in); err != nil || got != want {
			t.Errorf("ParseCompression(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParseCompression("layer-compression", "xz")
	if err == nil || !strings.Contains(kiln.ErrorMessage(err), "layer-compression") || !strings.Contains(err.Error(), "gzip or zstd") {
		t.Errorf("ParseCompression(xz): %v; want the field and the choices named", err)
	}
	if _, err := Put(context.Background(), store(t), t.TempDir(), WriteOptions{Compression: "xz"}); err == nil {
		t.Error("Put with compression xz worked")
	}
}

// TestExtractSetsXattrsInOrder: a file's extended attributes are set in
// the order of their names, so the extracted tree lists them the same way
// every time (mkfs.ext4 -d copies that order into the disk image; the map
// order of the tar records made disk images differ between builds).
func TestExtractSetsXattrsInOrder(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	recs := map[string]string{}
	var want []string
	for _, c := range "abcdefgh" {
		k := "user.kiln-" + string(c)
		recs[xattrRecord+k] = "v"
		want = append(want, k)
	}
	if err := tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Uid: os.Getuid(), Gid: os.Getgid(), PAXRecords: recs, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	for range 8 {
		dir := t.TempDir()
		if err := ExtractTar(context.Background(), bytes.NewReader(buf.Bytes()), dir, ExtractOptions{}); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				ci.SkipOrFail(t, "the temporary directory's file system has no user extended attributes")
			}
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, err := unix.Llistxattr(filepath.Join(dir, "f"), b)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range strings.Split(strings.TrimRight(string(b[:n]), "\x00"), "\x00") {
			if strings.HasPrefix(k, "user.kiln-") {
				got = append(got, k)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("extended attributes listed as %q, want %q (set in name order)", got, want)
		}
	}
}

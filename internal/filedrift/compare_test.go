package filedrift

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
)

// tree writes files (path → content; a trailing "/" makes a directory,
// "->target" a symlink) under a new temporary directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range slices.Sorted(func(yield func(string) bool) {
		for k := range files {
			if !yield(k) {
				return
			}
		}
	}) {
		c := files[p]
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(p, "/"):
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(c, "->"):
			if err := os.Symlink(strings.TrimPrefix(c, "->"), full); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// nextSecond waits until the clock's second has moved on, so that what
// the test writes next has a change time after the manifest's stamp.
func nextSecond() int64 {
	now := time.Now().Unix()
	// The kernel stamps ctime from its coarse clock, which lags
	// time.Now by up to a few ticks: wait until that clock too has left
	// the second, or a write just after it can still carry it.
	for time.Now().Add(-50*time.Millisecond).Unix() == now {
		time.Sleep(10 * time.Millisecond)
	}
	return now
}

func kinds(es []kiln.DriftEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, string(e.Kind)+" "+e.Path)
	}
	slices.Sort(out)
	return out
}

// TestCompare describes a tree, changes it the ways an operator would,
// and checks that the comparison reports exactly what changed, as the
// local platform's overlay comparison names it, hashes only the files
// written since the stamp, and counts volatile paths without reporting
// them.
func TestCompare(t *testing.T) {
	root := tree(t, map[string]string{
		"etc/a.conf":              "a=1\n",
		"etc/issue":               "Debian\n",
		"etc/kiln/volatile":       "/var/lib/nginx\n",
		"etc/untouched":           "same\n",
		"srv/www/index.html":      "<p>one</p>",
		"usr/bin/tool":            "#!/bin/sh\n",
		"usr/bin/link":            "->tool",
		"olddir/f1":               "1",
		"olddir/sub/f2":           "2",
		"filebecomesdir":          "x",
		"var/log/x.log":           "start\n",
		"var/lib/nginx/body/":     "",
		"var/lib/nginx/proxy/":    "",
		"var/lib/other/state":     "s",
		"skipme/kernel":           "k",
		"var/lib/nginx-other/cfg": "c",
	})
	ctx := context.Background()
	m, err := FromTree(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	if m.Volatile, err = ImageVolatile(root); err != nil {
		t.Fatal(err)
	}
	m.Stamp = nextSecond()
	opt := Options{Skip: []string{"/skipme"}}

	// Unchanged: nothing to report, nothing hashed (every file's change
	// time is the stamp's second or earlier).
	res, err := Compare(ctx, root, m, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 0 || res.Ignored != 0 || res.Hashed != 0 {
		t.Fatalf("unchanged tree: %+v; want no drift, nothing ignored or hashed", res)
	}
	full, err := Compare(ctx, root, m, Options{Skip: opt.Skip, HashAll: true})
	if err != nil || len(full.Files) != 0 || full.Hashed < 10 {
		t.Fatalf("unchanged tree, every file hashed: %+v, %v", full, err)
	}

	sh := func(script string) {
		t.Helper()
		for _, l := range strings.Split(strings.TrimSpace(script), "\n") {
			f := strings.Fields(l)
			p := filepath.Join(root, f[1])
			var err error
			switch f[0] {
			case "write":
				err = os.WriteFile(p, []byte(strings.Join(f[2:], " ")), 0o644)
			case "rm":
				err = os.RemoveAll(p)
			case "mkdir":
				err = os.MkdirAll(p, 0o755)
			case "chmod":
				err = os.Chmod(p, 0o700)
			case "relink":
				if err = os.Remove(p); err == nil {
					err = os.Symlink(f[2], p)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	sh(`
write srv/www/index.html <p>two</p>
write etc/added.conf new
rm etc/issue
chmod usr/bin/tool
relink usr/bin/link /bin/sh
rm olddir
mkdir opt/tools
write opt/tools/run x
rm filebecomesdir
mkdir filebecomesdir
write var/log/x.log more
write var/lib/nginx/body/1 tmp
rm var/lib/other/state
write skipme/kernel changed
write skipme/new x
write var/lib/nginx-other/cfg d`)
	res, err = Compare(ctx, root, m, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"added /etc/added.conf",
		"added /opt/",
		"added /opt/tools/",
		"added /opt/tools/run",
		"changed /filebecomesdir/",
		"changed /srv/www/index.html",
		"changed /usr/bin/link",
		"changed /usr/bin/tool",
		"changed /var/lib/nginx-other/cfg",
		"deleted /etc/issue",
		"deleted /olddir",
		"deleted /var/lib/other/state",
	}
	if got := kinds(res.Files); !slices.Equal(got, want) {
		t.Errorf("drift:\n got %q\nwant %q", got, want)
	}
	// /var/log and /var/lib/nginx, once each.
	if res.Ignored != 2 {
		t.Errorf("ignored %d volatile paths; want 2 (/var/log, /var/lib/nginx)", res.Ignored)
	}
	// The same-size change to index.html is found by its hash; of the
	// files present in the image only it and cfg were written.
	if res.Hashed != 2 {
		t.Errorf("hashed %d files; want 2 (the files written since the stamp with the image's size)", res.Hashed)
	}
}

// TestCompareOwner: a changed owner is drift, as on the local platform.
func TestCompareOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "chown needs root")
	}
	root := tree(t, map[string]string{"etc/a.conf": "a", "etc/b/": ""})
	ctx := context.Background()
	m, err := FromTree(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	m.Stamp = nextSecond()
	for _, p := range []string{"etc/a.conf", "etc/b"} {
		if err := os.Lchown(filepath.Join(root, p), 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Compare(ctx, root, m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kinds(res.Files), []string{"changed /etc/a.conf", "changed /etc/b/"}; !slices.Equal(got, want) {
		t.Errorf("drift %q; want %q", got, want)
	}
}

// TestManifestRoundTrip encodes and decodes a manifest, and refuses a
// truncated or malformed one.
func TestManifestRoundTrip(t *testing.T) {
	root := tree(t, map[string]string{"a": "1", "d/b": "2", "d/l": "->b"})
	m, err := FromTree(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	m.Stamp, m.Volatile = 42, []string{"/var/lib/x"}
	var b bytes.Buffer
	if err := m.Encode(&b); err != nil {
		t.Fatal(err)
	}
	got, err := Decode(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Stamp != 42 || !slices.Equal(got.Volatile, m.Volatile) || !slices.Equal(got.Entries, m.Entries) {
		t.Errorf("round trip: %+v; want %+v", got, m)
	}
	if e := got.Lookup("/d/l"); e == nil || e.Link != "b" {
		t.Errorf("Lookup(/d/l) = %+v", e)
	}
	if e := got.Lookup("/a"); e == nil || e.SHA256 != "6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b" {
		t.Errorf("Lookup(/a) = %+v; want the SHA-256 of \"1\"", e)
	}
	if _, err := Decode(bytes.NewReader(b.Bytes()[:b.Len()/2])); err == nil {
		t.Error("a truncated manifest decoded without error")
	}
	if _, err := Decode(strings.NewReader("not gzip")); err == nil {
		t.Error("a manifest that is not gzip decoded without error")
	}
}

// TestParseGuest: the guest's answer is read back; a kiln binary that
// predates the command is named with what to do.
func TestParseGuest(t *testing.T) {
	var out, errb bytes.Buffer
	root := tree(t, map[string]string{"a": "1"})
	m, err := FromTree(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	var in bytes.Buffer
	if err := m.Encode(&in); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "b"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	code := GuestMain(context.Background(), []string{"--root", root}, &in, &out, &errb)
	res, err := ParseGuest(code, out.Bytes(), errb.Bytes(), "/usr/local/bin/kiln")
	if err != nil {
		t.Fatalf("exit %d: %v (stderr %q)", code, err, errb.String())
	}
	if got := kinds(res.Files); !slices.Equal(got, []string{"added /b"}) {
		t.Errorf("guest answer %q; want [added /b]", got)
	}
	// What a kiln binary without the command says (exit 2).
	_, err = ParseGuest(2, nil, []byte("kiln: unknown command \"__file-drift\" for \"kiln\"\n"), "/usr/local/bin/kiln")
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "rebuild the image") || !strings.Contains(err.Error(), "/usr/local/bin/kiln") {
		t.Errorf("an old kiln binary: %v; want unavailable, naming the binary and saying to rebuild the image", err)
	}
	_, err = ParseGuest(1, nil, []byte("read the image manifest: no header\n"), "/usr/local/bin/kiln")
	if err == nil || strings.Contains(err.Error(), "rebuild") || !strings.Contains(err.Error(), "no header") {
		t.Errorf("a failed comparison: %v; want its own message", err)
	}
}

package local

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
)

// TestRootfsRefusesEscapes checks that unpacking a hostile artifact for an
// instance (GNU tar, see rootfs) writes nothing outside the rootfs cache: a
// symlink to a host directory followed by a file "through" it, the same
// with a relative ../ link, and a hard link through such a symlink. GNU tar
// creates links whose target is absolute or climbs with ".." only after
// every other member (a placeholder file stands in for them until then),
// so the later members fail instead of following them; this test keeps
// kiln from losing that by a change of flags (-h, --absolute-names,
// --keep-directory-symlink would each lose it).
func TestRootfsRefusesEscapes(t *testing.T) {
	for _, tool := range []string{"tar", "systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			ci.SkipOrFail(t, "rootfs unpack test needs "+tool)
		}
	}
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "secret"), []byte("host"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	store, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{DataDir: dir, Artifacts: store, ProbeBinary: exe, Supervisor: []string{exe, "__supervise"}})
	if err != nil {
		t.Fatal(err)
	}
	// From dataDir/local/rootfs/.tmp-…/ up to dir, then to host.
	up, err := filepath.Rel(filepath.Join(p.dataDir, "rootfs", "unpack"), host)
	if err != nil {
		t.Fatal(err)
	}
	type member struct {
		name string
		typ  byte
		link string
	}
	for _, tc := range []struct {
		name    string
		members []member
		// A directory member over the link replaces the link, so that
		// archive may unpack; all that matters is that it stays inside.
		mayUnpack bool
	}{
		{"absolute symlink", []member{{"x", tar.TypeSymlink, host}, {"x/pwned", tar.TypeReg, ""}}, false},
		{"relative symlink", []member{{"x", tar.TypeSymlink, up}, {"x/pwned", tar.TypeReg, ""}}, false},
		{"inside link to outside link", []member{{"y", tar.TypeSymlink, host}, {"x", tar.TypeSymlink, "y"}, {"x/pwned", tar.TypeReg, ""}}, false},
		{"directory over a symlink", []member{{"x", tar.TypeSymlink, host}, {"x/", tar.TypeDir, ""}, {"x/pwned", tar.TypeReg, ""}}, true},
		{"hard link through a symlink", []member{{"y", tar.TypeSymlink, host}, {"pwned", tar.TypeLink, "y/secret"}}, false},
		{"hard link above the root", []member{{"pwned", tar.TypeLink, up + "/secret"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			tw := tar.NewWriter(&b)
			for _, m := range tc.members {
				hdr := &tar.Header{Name: m.name, Typeflag: m.typ, Linkname: m.link, Mode: 0o644,
					Uid: os.Getuid(), Gid: os.Getgid(), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
				if m.typ == tar.TypeReg {
					hdr.Size = 5
				}
				if m.typ == tar.TypeDir {
					hdr.Mode = 0o755
				}
				if err := tw.WriteHeader(hdr); err != nil {
					t.Fatal(err)
				}
				if m.typ == tar.TypeReg {
					if _, err := tw.Write([]byte("pwned")); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := tw.Close(); err != nil {
				t.Fatal(err)
			}
			art, err := store.Put(context.Background(), &b)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.rootfs(context.Background(), art.Digest)
			t.Logf("unpack: %v", err)
			if err == nil && !tc.mayUnpack {
				t.Error("the hostile artifact unpacked without an error")
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
				t.Errorf("the host's secret has %d links; the artifact linked it", st.Nlink)
			}
		})
	}
}

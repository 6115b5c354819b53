package bake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/ci"
)

// makeDeb builds a small package into root's apt archive with dpkg-deb
// and returns its path.
func makeDeb(t *testing.T, root, name, content string) string {
	t.Helper()
	if _, err := exec.LookPath("dpkg-deb"); err != nil {
		ci.SkipOrFail(t, "needs dpkg-deb (apt-get install dpkg)")
	}
	src := t.TempDir()
	for p, c := range map[string]string{
		"DEBIAN/control":           "Package: " + name + "\nVersion: 1.0\nArchitecture: all\nMaintainer: kiln <kiln@example.org>\nDescription: test package\n",
		"usr/share/" + name + "/a": content,
	} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	archive := filepath.Join(root, "var/cache/apt/archives")
	if err := os.MkdirAll(archive, 0o755); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(archive, name+"_1.0_all.deb")
	if out, err := exec.Command("dpkg-deb", "-Zxz", "--root-owner-group", "--build", src, deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v\n%s", err, out)
	}
	return deb
}

func fsysTarfile(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, stderr.String())
	}
	return out
}

func keptName(t *testing.T, root, deb string) string {
	t.Helper()
	b, err := os.ReadFile(deb)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return filepath.Join(root, "run/kiln-fsys", hex.EncodeToString(sum[:])+".tar")
}

// The host's shim prints exactly what dpkg-deb prints, keeps it under the
// package's sha256 and serves the kept archive the next time; the
// chroot's shim only reads; other commands and other paths are dpkg-deb's.
func TestShims(t *testing.T) {
	root := t.TempDir()
	deb := makeDeb(t, root, "kiln-shim-test", "hello\n")
	host, chroot, err := Shims(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	shim := filepath.Join(host, "dpkg-deb")
	want := fsysTarfile(t, "dpkg-deb", "--fsys-tarfile", deb)

	if got := fsysTarfile(t, shim, "--fsys-tarfile", deb); !bytes.Equal(got, want) {
		t.Fatalf("the shim's archive differs from dpkg-deb's (%d vs %d bytes)", len(got), len(want))
	}
	kept := keptName(t, root, deb)
	if b, err := os.ReadFile(kept); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("kept archive %s: %v (%d bytes, want %d)", kept, err, len(b), len(want))
	}
	// Served from the kept file: both shims print what it holds.
	marked := append(bytes.Clone(want), "kept"...)
	if err := os.WriteFile(kept, marked, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{shim, chroot} {
		if got := fsysTarfile(t, s, "--fsys-tarfile", deb); !bytes.Equal(got, marked) {
			t.Errorf("%s does not serve the kept archive", s)
		}
	}
	// Another package content is another name: never the stale one.
	deb2 := makeDeb(t, root, "kiln-shim-test", "changed\n")
	if got := fsysTarfile(t, chroot, "--fsys-tarfile", deb2); !bytes.Equal(got, fsysTarfile(t, "dpkg-deb", "--fsys-tarfile", deb2)) {
		t.Error("the chroot's shim served a kept archive for a changed package")
	}
	if _, err := os.Stat(keptName(t, root, deb2)); err == nil {
		t.Error("the chroot's shim kept an archive; it only reads")
	}
	// apt hands dpkg a link to the archive: the shim follows it.
	link := filepath.Join(t.TempDir(), "01-kiln-shim-test.deb")
	if err := os.Symlink(deb2, link); err != nil {
		t.Fatal(err)
	}
	fsysTarfile(t, shim, "--fsys-tarfile", link)
	if _, err := os.Stat(keptName(t, root, deb2)); err != nil {
		t.Errorf("the shim did not follow apt's link to the archive: %v", err)
	}
	// Everything else is dpkg-deb itself.
	if got, want := fsysTarfile(t, shim, "--field", deb2, "Package"), fsysTarfile(t, "dpkg-deb", "--field", deb2, "Package"); !bytes.Equal(got, want) {
		t.Errorf("--field through the shim: %q, want %q", got, want)
	}
	other := filepath.Join(t.TempDir(), "x.deb")
	b, _ := os.ReadFile(deb2)
	if err := os.WriteFile(other, b, 0o644); err != nil {
		t.Fatal(err)
	}
	fsysTarfile(t, shim, "--fsys-tarfile", other)
	if ents, _ := os.ReadDir(filepath.Join(filepath.Dir(other), "run")); len(ents) > 0 {
		t.Error("the shim kept an archive of a package outside apt's archive")
	}
}

// decompress keeps every package's archive before the extraction asks,
// and stops, saying so, when the stop hook's file appears.
func TestDecompressAhead(t *testing.T) {
	root := t.TempDir()
	debs := []string{makeDeb(t, root, "kiln-a", "a\n"), makeDeb(t, root, "kiln-b", "b\n"), makeDeb(t, root, "kiln-c", "c\n")}
	shims := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); decompress(ctx, root, shims, 2) }()
	for _, deb := range debs {
		kept := keptName(t, root, deb)
		for {
			if b, err := os.ReadFile(kept); err == nil {
				if !bytes.Equal(b, fsysTarfile(t, "dpkg-deb", "--fsys-tarfile", deb)) {
					t.Fatalf("%s: kept archive differs from dpkg-deb's", deb)
				}
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("%s was not decompressed ahead", deb)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	if err := os.WriteFile(filepath.Join(shims, stopFile), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	<-done
	if _, err := os.Stat(filepath.Join(shims, stoppedFile)); err != nil {
		t.Fatalf("decompress stopped without saying so: %v", err)
	}
}

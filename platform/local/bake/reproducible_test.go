package bake

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
)

func TestClampTreeAndDeterministicTar(t *testing.T) {
	epoch := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	old := epoch.Add(-48 * time.Hour)
	mk := func() string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "etc/app"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range []string{"etc/app/b", "etc/app/a", "etc/old"} {
			if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink("app/a", filepath.Join(dir, "etc/link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(dir, "etc/app/a"), filepath.Join(dir, "etc/hard")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(dir, "etc/old"), old, old); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	a, b := mk(), mk()
	for _, d := range []string{a, b} {
		if err := ClampTree(context.Background(), d, epoch); err != nil {
			t.Fatal(err)
		}
	}
	for n, want := range map[string]time.Time{"etc/app/a": epoch, "etc/app": epoch, "etc/old": old} {
		fi, err := os.Lstat(filepath.Join(a, n))
		if err != nil || !fi.ModTime().Equal(want) {
			t.Errorf("%s: %v %v, want %s", n, fi.ModTime(), err, want)
		}
	}
	var ta, tb bytes.Buffer
	if err := layer.WriteTar(context.Background(), a, &ta, layer.WriteOptions{ClampMtime: epoch}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // b's entries are older on disk; the tar must not show it
	if err := layer.WriteTar(context.Background(), b, &tb, layer.WriteOptions{ClampMtime: epoch}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ta.Bytes(), tb.Bytes()) {
		t.Fatal("two trees with the same content and clamped times give different tars")
	}
}

func TestPinFile(t *testing.T) {
	got := string(PinFile([]kiln.Package{
		{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64"},
		{Name: "bash", Version: "5.2.15-2+b7", Architecture: "amd64"},
	}))
	want := "# kiln version rebuild: the package versions the version was built with\n" +
		"\nPackage: bash\nPin: version 5.2.15-2+b7\nPin-Priority: 1001\n" +
		"\nPackage: zlib1g\nPin: version 1:1.2.13.dfsg-1\nPin-Priority: 1001\n"
	if got != want {
		t.Errorf("pins:\n%s\nwant:\n%s", got, want)
	}
}

func TestBootstrapArgsPins(t *testing.T) {
	b := &Bootstrap{Suite: "bookworm", Mirror: "http://m", Pins: "/tmp/p.pref"}
	args := b.Args("/t", "directory")
	var setup, rm bool
	for _, a := range args {
		setup = setup || a == `--setup-hook=cp '/tmp/p.pref' "$1`+pinPath+`"`
		rm = rm || a == `--customize-hook=rm -f "$1`+pinPath+`"`
	}
	if !setup || !rm {
		t.Errorf("pins not installed and removed: %q", args)
	}
}

func TestBootstrapArgsUnsafeIO(t *testing.T) {
	b := &Bootstrap{Suite: "bookworm", Mirror: "http://m", UnsafeIO: true, ExportLists: "/c/lists"}
	args := b.Args("/t", "directory")
	joined := strings.Join(args, "\n")
	for _, want := range []string{
		`--setup-hook=mkdir -p "$1/etc/dpkg/dpkg.cfg.d" && echo force-unsafe-io > "$1` + unsafeIOConf + `"`,
		`--customize-hook=rm -f "$1` + unsafeIOConf + `"`,
		`ln "$f" "$t" 2>/dev/null || cp -p "$f" "$t"; then mv -f "$t" '/c/lists'/"$n"`,
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q:\n%s", want, joined)
		}
	}
	if plain := strings.Join((&Bootstrap{Suite: "bookworm", Mirror: "http://m"}).Args("/t", ""), "\n"); strings.Contains(plain, "unsafe-io") {
		t.Errorf("a bootstrap without UnsafeIO (the raw benchmark's) has it:\n%s", plain)
	}
}

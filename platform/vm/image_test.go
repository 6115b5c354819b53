package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
)

// cachePlatform is a platform with just what the image cache needs.
func cachePlatform(t *testing.T, arts kiln.ArtifactStore, dataDir string) *Platform {
	t.Helper()
	p := &Platform{dataDir: filepath.Join(dataDir, "vm"), artifacts: arts}
	if err := os.MkdirAll(filepath.Join(p.dataDir, "images"), 0o700); err != nil {
		t.Fatal(err)
	}
	return p
}

func rawDisk(fill byte) []byte {
	b := bytes.Repeat([]byte{fill}, 4096)
	b[510], b[511] = 0x55, 0xaa
	return b
}

// opaqueStore hides the local store's Path: a store whose artifacts are
// not files here (a registry), which the cache copies from.
type opaqueStore struct{ kiln.ArtifactStore }

// A local store's disk image enters the cache as a hard link (not a copy),
// checked against its digest; a corrupt one or one that is not a disk is
// refused and leaves nothing in the cache; other stores are copied.
func TestImageCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	put := func(b []byte) *kiln.Artifact {
		a, err := store.Put(ctx, bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	cached := func(p *Platform) []string {
		ents, err := os.ReadDir(filepath.Join(p.dataDir, "images"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	p := cachePlatform(t, store, dir)

	good := put(rawDisk(1))
	path, format, err := p.image(ctx, good.Digest)
	if err != nil || format != "raw" {
		t.Fatalf("image: %q, %q, %v", path, format, err)
	}
	src, _ := store.Path(good.Digest)
	a, _ := os.Stat(src)
	b, _ := os.Stat(path)
	if !os.SameFile(a, b) {
		t.Errorf("the cached image %s is a copy, not a link of %s", path, src)
	}
	if again, _, err := p.image(ctx, good.Digest); err != nil || again != path {
		t.Errorf("second lookup: %q, %v", again, err)
	}

	bad := put(rawDisk(2))
	src, _ = store.Path(bad.Digest)
	if err := os.Chmod(src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, rawDisk(3), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(src, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.image(ctx, bad.Digest); err == nil || !strings.Contains(err.Error(), "is corrupt") {
		t.Errorf("corrupt artifact: %v", err)
	}
	tarball := make([]byte, 1024)
	copy(tarball[257:], "ustar")
	if _, _, err := p.image(ctx, put(tarball).Digest); err == nil || !strings.Contains(err.Error(), "is not a disk image") {
		t.Errorf("rootfs artifact: %v", err)
	}
	if got := cached(p); len(got) != 1 || got[0] != strings.TrimPrefix(good.Digest, "sha256:") {
		t.Errorf("image cache holds %v, want only %s", got, good.Digest)
	}

	q := cachePlatform(t, opaqueStore{store}, t.TempDir())
	path, format, err = q.image(ctx, good.Digest)
	if err != nil || format != "raw" {
		t.Fatalf("image through a store without files: %q, %q, %v", path, format, err)
	}
	b, _ = os.Stat(path)
	if os.SameFile(a, b) {
		t.Error("an artifact of a store without files was linked")
	}
	if _, _, err := q.image(ctx, bad.Digest); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("corrupt artifact through a store without files: %v", err)
	}
}

func TestDDBlock(t *testing.T) {
	for _, c := range []struct{ skip, count, want uint64 }{
		{2048, 208896, 2048}, // a 102 MiB ESP at 1 MiB: 1 MiB blocks
		{0, 34, 2},           // the partition table
		{34, 100, 2},
		{40, 16, 8},
		{35, 2048, 1},
		{4096, 1024, 1024},
	} {
		if got := ddBlock(c.skip, c.count); got != c.want {
			t.Errorf("ddBlock(%d, %d) = %d, want %d", c.skip, c.count, got, c.want)
		}
	}
}

// The EFI system partition is read out of the disk byte for byte, whether
// it is aligned (large blocks) or not (sector by sector).
func TestExtractESP(t *testing.T) {
	img := ci.Tool(t, "qemu-img", "qemu-utils")
	for name, part := range map[string][2]uint64{"aligned": {2048, 4096}, "unaligned": {35, 77}} {
		t.Run(name, func(t *testing.T) {
			first, n := part[0], part[1]
			disk := make([]byte, (first+n+34)*512)
			copy(disk[512:], "EFI PART")
			h := disk[512:]
			binary.LittleEndian.PutUint64(h[72:], 2)
			binary.LittleEndian.PutUint32(h[80:], 4)
			binary.LittleEndian.PutUint32(h[84:], 128)
			e := disk[2*512+128:] // the second entry
			copy(e, espType)
			binary.LittleEndian.PutUint64(e[32:], first)
			binary.LittleEndian.PutUint64(e[40:], first+n-1)
			want := disk[first*512 : (first+n)*512]
			for i := range want {
				want[i] = byte(i*7 + i/512)
			}
			dir := t.TempDir()
			base := filepath.Join(dir, "disk.raw")
			if err := os.WriteFile(base, disk, 0o600); err != nil {
				t.Fatal(err)
			}
			p := &Platform{img: img}
			out := filepath.Join(dir, "esp")
			if err := p.extractESP(context.Background(), base, "raw", out); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, _ := io.ReadAll(f)
			if !bytes.Equal(got, want) {
				t.Errorf("extracted %d bytes, want the partition's %d (equal: %v)", len(got), len(want), bytes.Equal(got, want))
			}
		})
	}
}

// A guest with more than one virtual CPU under TCG gets a host thread per
// virtual CPU; DefaultCPUs gives two where the machine has two cores.
func TestQemuArgsCPUs(t *testing.T) {
	accelOf := func(accel string, cpus int) (string, string) {
		t.Helper()
		args, err := qemuArgs(t.TempDir(), &record{ID: "x", Accel: accel}, "OVMF.fd", 1024, cpus, nil)
		if err != nil {
			t.Fatal(err)
		}
		var a, smp string
		for i := 1; i < len(args); i++ {
			switch args[i-1] {
			case "-accel":
				a = args[i]
			case "-smp":
				smp = args[i]
			}
		}
		return a, smp
	}
	for _, c := range []struct {
		accel     string
		cpus      int
		want, smp string
	}{
		{AccelTCG, 1, "tcg", "1"},
		{AccelTCG, 2, "tcg,thread=multi", "2"},
		{AccelKVM, 2, "kvm", "2"},
	} {
		if a, smp := accelOf(c.accel, c.cpus); a != c.want || smp != c.smp {
			t.Errorf("%s with %d CPUs: -accel %q -smp %q, want %q and %q", c.accel, c.cpus, a, smp, c.want, c.smp)
		}
	}
	if n := DefaultCPUs(); n < 1 || n > 2 || (runtime.NumCPU() >= 2 && n != 2) {
		t.Errorf("DefaultCPUs() = %d on a machine with %d CPUs", n, runtime.NumCPU())
	}
}

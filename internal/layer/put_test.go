package layer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/kiln-project/kiln/artifact"
)

// Put compresses on its own goroutine, fed the tar writer's writes one by
// one; its blob must be the one a single goroutine writing the tar
// through gzip makes (compressed layer digests are recorded in versions,
// and a rebuild compares them).
func TestPutSameBlobAsSequential(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%17))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		// Sizes from empty to a few hundred KiB, half of them
		// compressible, so the tar writer's writes vary.
		b := make([]byte, rng.IntN(1<<(8+i%11)))
		for j := range b {
			if i%2 == 0 {
				b[j] = byte(rng.Uint32())
			} else {
				b[j] = "kiln layer "[j%11]
			}
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts := WriteOptions{ClampMtime: time.Unix(1700000000, 0)}
	l, err := Put(context.Background(), s, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	blob, diff := sha256.New(), sha256.New()
	zw, err := gzip.NewWriterLevel(blob, gzipLevel)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteTar(context.Background(), dir, io.MultiWriter(zw, diff), opts); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + hex.EncodeToString(blob.Sum(nil)); l.Digest != want {
		t.Errorf("Put's blob %s, sequential %s", l.Digest, want)
	}
	if want := "sha256:" + hex.EncodeToString(diff.Sum(nil)); l.DiffID != want {
		t.Errorf("Put's diff ID %s, sequential %s", l.DiffID, want)
	}
}

// A tree that cannot be read fails Put, with nothing left running.
func TestPutTarError(t *testing.T) {
	s, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Put(context.Background(), s, filepath.Join(t.TempDir(), "missing"), WriteOptions{}); err == nil {
		t.Fatal("Put of a missing directory succeeded")
	}
}

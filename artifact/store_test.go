package artifact

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func TestPutOpenStatDelete(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	content := bytes.Repeat([]byte("kiln "), 100000)
	sum := sha256.Sum256(content)
	want := "sha256:" + hex.EncodeToString(sum[:])

	a, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != want || a.Size != int64(len(content)) || a.Ref != "local:"+want {
		t.Fatalf("Put = %+v, want digest %s size %d", a, want, len(content))
	}
	// Putting the same content again is fine.
	if _, err := s.Put(ctx, bytes.NewReader(content)); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	st, err := s.Stat(ctx, want)
	if err != nil || st.Size != a.Size {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	r, err := s.Open(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if !bytes.Equal(got, content) {
		t.Fatal("content differs")
	}
	if err := s.Delete(ctx, want); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, want); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("Stat after Delete: %v, want not_found", err)
	}
	if _, err := s.Open(ctx, want); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("Open after Delete: %v, want not_found", err)
	}
	if err := s.Delete(ctx, want); err != nil {
		t.Fatalf("Delete of a missing artifact: %v", err)
	}
	if _, err := s.Open(ctx, "sha256:nothex"); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Fatalf("Open bad digest: %v, want invalid", err)
	}
}

func TestOpenDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Put(ctx, strings.NewReader("the original root filesystem"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := s.Path(a.Digest)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("the modified root filesystem"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Reading to the end reports it.
	r, err := s.Open(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Fatalf("ReadAll of a corrupted artifact: %v, want a corruption error", err)
	}
	r.Close()

	// Reading nearly all of it and closing reports it too.
	r, err = s.Open(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err == nil || kiln.ErrorCode(err) != kiln.EINTERNAL {
		t.Fatalf("Close of a corrupted artifact: %v, want a corruption error", err)
	}
}

func TestPutInterruptedLeavesNothing(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &cancelAfter{n: 3, cancel: cancel}
	if _, err := s.Put(ctx, r); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	ents, _ := os.ReadDir(s.Dir())
	if len(ents) != 0 {
		t.Fatalf("store holds %d files after an interrupted Put, want 0", len(ents))
	}
}

type cancelAfter struct {
	n      int
	cancel func()
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	c.n--
	if c.n == 0 {
		c.cancel()
	}
	return copy(p, "data"), nil
}

func TestCleanTemp(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(s.Dir(), tempPrefix+"old")
	fresh := filepath.Join(s.Dir(), tempPrefix+"fresh")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * time.Hour)
	os.Chtimes(old, past, past)
	removed, err := s.CleanTemp(context.Background(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != old {
		t.Fatalf("CleanTemp removed %v, want only %s", removed, old)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp file removed: %v", err)
	}
}

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

	"github.com/kiln-project/kiln"
)

// remoteStore stands for the registry: a local Store whose files the
// test may corrupt (its Open checks digests, as the registry store does).
func remoteStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReadThrough(t *testing.T) {
	ctx := context.Background()
	remote := remoteStore(t)
	local, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rt := &ReadThrough{Local: local, Remote: remote}
	content := bytes.Repeat([]byte("layer "), 50000)
	sum := sha256.Sum256(content)
	d := "sha256:" + hex.EncodeToString(sum[:])
	if _, err := remote.Put(ctx, bytes.NewReader(content)); err != nil {
		t.Fatal(err)
	}

	// Stat sees the remote copy; nothing is pulled for it.
	if a, err := rt.Stat(ctx, d); err != nil || a.Size != int64(len(content)) {
		t.Fatalf("Stat = %+v, %v", a, err)
	}
	if _, err := local.Stat(ctx, d); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("Stat pulled the artifact: %v", err)
	}
	// Open pulls it into the local store, verified, and reads it there.
	rc, err := rt.Open(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read %d bytes, %v", len(got), err)
	}
	if _, err := local.Stat(ctx, d); err != nil {
		t.Fatalf("the artifact is not cached locally: %v", err)
	}
	// Put and Delete are local: the remote copy stays.
	a, err := rt.Put(ctx, strings.NewReader("built here"))
	if err != nil || !strings.HasPrefix(a.Ref, RefPrefix) {
		t.Fatalf("Put = %+v, %v", a, err)
	}
	if _, err := remote.Stat(ctx, a.Digest); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("Put reached the remote store: %v", err)
	}
	if err := rt.Delete(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Stat(ctx, d); err != nil {
		t.Errorf("Delete removed the remote copy: %v", err)
	}

	// A remote copy that does not match its digest is refused and not kept.
	p, err := remote.Path(d)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(content)
	bad[10] ^= 0xff
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Open(ctx, d); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("Open of a corrupted remote artifact = %v; want it refused", err)
	}
	if _, err := local.Stat(ctx, d); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("the corrupted artifact was kept: %v", err)
	}
	if ents, _ := os.ReadDir(local.Dir()); len(ents) != 1 { // only "built here"
		var names []string
		for _, e := range ents {
			names = append(names, filepath.Base(e.Name()))
		}
		t.Errorf("local store after the refused pull: %v", names)
	}

	// Missing everywhere: ENOTFOUND naming both stores.
	missing := "sha256:" + strings.Repeat("ab", 32)
	if _, err := rt.Open(ctx, missing); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), local.Dir()) {
		t.Errorf("Open of a missing artifact = %v", err)
	}
}

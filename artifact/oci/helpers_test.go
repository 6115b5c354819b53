package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"maps"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/registrytest"
)

// memStore is a kiln.ArtifactStore in memory: the source of pushes and
// the destination of fetches in these tests (a driver does not import
// another driver, even in tests).
type memStore struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemStore() *memStore { return &memStore{m: map[string][]byte{}} }

func (s *memStore) Put(ctx context.Context, r io.Reader) (*kiln.Artifact, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	d := "sha256:" + hex.EncodeToString(sum[:])
	s.mu.Lock()
	s.m[d] = b
	s.mu.Unlock()
	return &kiln.Artifact{Ref: "mem:" + d, Digest: d, Size: int64(len(b))}, nil
}

func (s *memStore) Open(ctx context.Context, d string) (io.ReadCloser, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[d]
	if !ok {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "no %s", d)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (s *memStore) Stat(ctx context.Context, d string) (*kiln.Artifact, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.m[d]
	if !ok {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "no %s", d)
	}
	return &kiln.Artifact{Ref: "mem:" + d, Digest: d, Size: int64(len(b))}, nil
}

func (s *memStore) Delete(ctx context.Context, d string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, d)
	return nil
}

func (s *memStore) get(d string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[d]
}

// rootfsTar returns a tiny root filesystem in kiln's artifact format
// (relative names, directories ending in /), with files as given.
func rootfsTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	dirs := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		for i := range len(name) {
			if name[i] == '/' && !dirs[name[:i+1]] {
				dirs[name[:i+1]] = true
				if err := tw.WriteHeader(&tar.Header{Name: name[:i+1], Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name])), ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[name])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// putLayer stores b in src and returns it as a layer.
func putLayer(t *testing.T, src *memStore, b []byte) Layer {
	t.Helper()
	a, err := src.Put(context.Background(), bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return Layer{MediaType: MediaTypeLayer, Digest: a.Digest, Size: a.Size}
}

// plainStore starts a plain registry and opens a store on repository kiln.
func plainStore(t *testing.T) (*registrytest.Registry, *Store) {
	t.Helper()
	reg := registrytest.Start(t, registrytest.Options{})
	s, err := Open(reg.URL("kiln"), Options{CredentialsFile: emptyCredentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	return reg, s
}

// emptyCredentials is a credentials file with nothing in it, so the
// tests never read the machine's ~/.docker/config.json.
func emptyCredentials(t *testing.T) string {
	t.Helper()
	p := t.TempDir() + "/config.json"
	if err := writeString(p, `{"auths":{}}`); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeString(p, s string) error { return os.WriteFile(p, []byte(s), 0o600) }

package platformtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kiln-project/kiln"
)

var _ kiln.ArtifactStore = (*DirStore)(nil)

// DirStore is a minimal kiln.ArtifactStore over a directory of files named by
// their sha256, for driver tests that must not depend on the real store.
type DirStore struct{ Dir string }

func (s *DirStore) path(digest string) (string, error) {
	if err := kiln.ValidateDigest("digest", digest); err != nil {
		return "", err
	}
	return filepath.Join(s.Dir, strings.TrimPrefix(digest, "sha256:")), nil
}

// Put stores r's content under its digest.
func (s *DirStore) Put(ctx context.Context, r io.Reader) (*kiln.Artifact, error) {
	if err := os.MkdirAll(s.Dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(s.Dir, ".put-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	p, _ := s.path(digest)
	if err := os.Rename(f.Name(), p); err != nil {
		return nil, err
	}
	return &kiln.Artifact{Ref: "dir:" + digest, Digest: digest, Size: n}, nil
}

// PutFile stores the file at path.
func (s *DirStore) PutFile(ctx context.Context, path string) (*kiln.Artifact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return s.Put(ctx, f)
}

// Open returns a reader whose EOF and Close fail when the content does not
// match digest.
func (s *DirStore) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "artifact %s is not in the store", digest)
	}
	if err != nil {
		return nil, err
	}
	return &verifier{f: f, h: sha256.New(), want: digest}, nil
}

// Stat describes a stored artifact.
func (s *DirStore) Stat(ctx context.Context, digest string) (*kiln.Artifact, error) {
	p, err := s.path(digest)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "artifact %s is not in the store", digest)
	}
	if err != nil {
		return nil, err
	}
	return &kiln.Artifact{Ref: "dir:" + digest, Digest: digest, Size: fi.Size()}, nil
}

// Delete removes an artifact; a missing one is fine.
func (s *DirStore) Delete(ctx context.Context, digest string) error {
	p, err := s.path(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type verifier struct {
	f    *os.File
	h    hash.Hash
	want string
	eof  bool
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		v.eof = true
		if got := "sha256:" + hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, fmt.Errorf("artifact %s: content hashes to %s", v.want, got)
		}
	}
	return n, err
}

func (v *verifier) Close() error {
	if !v.eof {
		// Check the rest too, so a partial read cannot pass as verified.
		if _, err := io.Copy(io.Discard, v); err != nil {
			v.f.Close()
			return err
		}
	}
	return v.f.Close()
}

// Digest hashes a stored artifact's content again, for tests that check an
// instance never wrote into it.
func Digest(ctx context.Context, s kiln.ArtifactStore, digest string) (string, error) {
	r, err := s.Open(ctx, digest)
	if err != nil {
		return "", err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), r.Close()
}

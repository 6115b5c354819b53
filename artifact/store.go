package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// RefPrefix starts the Ref of every artifact kept by a local Store:
// "local:sha256:<hex>".
const RefPrefix = "local:"

// tempPrefix names files being written; CleanTemp removes stale ones.
const tempPrefix = ".tmp-"

// Store keeps artifacts in a local directory.
type Store struct {
	dir string // <dataDir>/artifacts/sha256
}

var _ kiln.ArtifactStore = (*Store)(nil)

// Open returns the store under dataDir, creating its directory.
func Open(dataDir string) (*Store, error) {
	dir := filepath.Join(dataDir, "artifacts", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("artifact store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the directory holding the artifacts.
func (s *Store) Dir() string { return s.dir }

// Path returns the file holding digest's content, for local readers that
// need a file (it is not verified; use Open to read with verification).
func (s *Store) Path(digest string) (string, error) {
	hexd, err := parseDigest(digest)
	if err != nil {
		return "", err
	}
	return filepath.Join(s.dir, hexd), nil
}

func parseDigest(digest string) (string, error) {
	if err := kiln.ValidateDigest("digest", digest); err != nil {
		return "", err
	}
	return strings.TrimPrefix(digest, "sha256:"), nil
}

// Put copies r into the store. The content goes to a temporary file in the
// store's directory, is synced, and is renamed to its digest only when r is
// exhausted without error, so a reader never sees a partial artifact.
// Putting content that is already stored is not an error.
func (s *Store) Put(ctx context.Context, r io.Reader) (*kiln.Artifact, error) {
	f, err := os.CreateTemp(s.dir, tempPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("artifact put: %w", err)
	}
	tmp := f.Name()
	done := false
	defer func() {
		if !done {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(newWriteback(f), h), ctxReader{ctx, r})
	if err != nil {
		return nil, fmt.Errorf("artifact put: %w", err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("artifact put: sync: %w", err)
	}
	if err := f.Chmod(0o444); err != nil {
		return nil, fmt.Errorf("artifact put: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("artifact put: %w", err)
	}
	hexd := hex.EncodeToString(h.Sum(nil))
	if err := os.Rename(tmp, filepath.Join(s.dir, hexd)); err != nil {
		return nil, fmt.Errorf("artifact put: %w", err)
	}
	done = true
	if d, err := os.Open(s.dir); err == nil { // make the rename durable
		_ = d.Sync()
		_ = d.Close()
	}
	digest := "sha256:" + hexd
	return &kiln.Artifact{Ref: RefPrefix + digest, Digest: digest, Size: n}, nil
}

// Open returns a reader of the artifact that checks its digest: the read
// that reaches the end, or Close, returns an error when the content does
// not match (the artifact was corrupted on disk).
func (s *Store) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	hexd, err := parseDigest(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(s.dir, hexd))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "artifact %s is not in the local store %s", digest, s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("artifact open: %w", err)
	}
	return &verifier{ctx: ctx, f: f, h: sha256.New(), want: hexd}, nil
}

// Stat reports an artifact's size without reading it.
func (s *Store) Stat(ctx context.Context, digest string) (*kiln.Artifact, error) {
	hexd, err := parseDigest(digest)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(filepath.Join(s.dir, hexd))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "artifact %s is not in the local store %s", digest, s.dir)
	}
	if err != nil {
		return nil, fmt.Errorf("artifact stat: %w", err)
	}
	return &kiln.Artifact{Ref: RefPrefix + digest, Digest: digest, Size: fi.Size()}, nil
}

// Delete removes an artifact. Deleting a missing artifact is not an error.
func (s *Store) Delete(ctx context.Context, digest string) error {
	hexd, err := parseDigest(digest)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.dir, hexd)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("artifact delete: %w", err)
	}
	return nil
}

// CleanTemp removes temporary files older than age: what a Put interrupted
// by a crash left behind. It returns the names removed.
func (s *Store) CleanTemp(ctx context.Context, age time.Duration) ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("artifact clean: %w", err)
	}
	var removed []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), tempPrefix) {
			continue
		}
		fi, err := e.Info()
		if err != nil || time.Since(fi.ModTime()) < age {
			continue
		}
		p := filepath.Join(s.dir, e.Name())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("artifact clean: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// verifier hashes what is read and compares at EOF and Close.
type verifier struct {
	ctx     context.Context
	f       *os.File
	h       hash.Hash
	want    string
	eof     bool
	checked error
}

func (v *verifier) Read(p []byte) (int, error) {
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		v.eof = true
		if cerr := v.check(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (v *verifier) check() error {
	if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
		v.checked = kiln.Errorf(kiln.EINTERNAL, "artifact sha256:%s is corrupted: its content hashes to sha256:%s; delete it and rebuild or re-fetch it", v.want, got)
	}
	return v.checked
}

// Close checks the digest when the reader was read to the end, or nearly:
// a tar reader stops at the end-of-archive marker, so up to 1 MiB left
// unread is read and checked here. A caller that gave up earlier is not
// told about corruption it did not read.
func (v *verifier) Close() error {
	if !v.eof && v.checked == nil {
		if fi, err := v.f.Stat(); err == nil {
			if off, err := v.f.Seek(0, io.SeekCurrent); err == nil && fi.Size()-off <= 1<<20 {
				if _, err := io.Copy(v.h, v.f); err == nil {
					v.eof = true
					_ = v.check()
				}
			}
		}
	}
	cerr := v.f.Close()
	if v.checked != nil {
		return v.checked
	}
	return cerr
}

package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"

	"github.com/kiln-project/kiln"
)

// mediaTypeBlob is the media type of an artifact pushed with Put: the
// store does not know what it holds.
const mediaTypeBlob = "application/octet-stream"

// url returns the URL of a repository of this registry.
func (s *Store) url(repo string) string { return Scheme + s.loc.Host + "/" + repo }

// ref returns the Ref of an artifact in the store's repository.
func (s *Store) ref(d string) string { return s.loc.String() + "@" + d }

// Put uploads r as a blob of the store's repository. The registry needs
// the digest when the upload ends, so the content is first copied to a
// file in Options.SpoolDir while it is hashed (never held in memory), then
// streamed to the registry unless it is there already. Putting content
// that is already stored is not an error.
func (s *Store) Put(ctx context.Context, r io.Reader) (*kiln.Artifact, error) {
	f, err := os.CreateTemp(s.opts.SpoolDir, "kiln-oci-put-*")
	if err != nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "artifact put: cannot spool the artifact before uploading it to %s: %v; give a spool directory with room for it", s.loc, err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	desc := ocispec.Descriptor{MediaType: mediaTypeBlob, Digest: digest.NewDigestFromBytes(digest.SHA256, h.Sum(nil)), Size: n}
	repo, err := s.repo(ctx, s.loc.Repository)
	if err != nil {
		return nil, err
	}
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return nil, s.fail(err, "check artifact %s in %s", desc.Digest, s.loc)
	}
	if !ok {
		if err := repo.Blobs().Push(ctx, desc, f); err != nil {
			return nil, s.fail(err, "upload artifact %s to %s", desc.Digest, s.loc)
		}
	}
	d := desc.Digest.String()
	return &kiln.Artifact{Ref: s.ref(d), Digest: d, Size: n}, nil
}

// Open returns a reader of the artifact that checks its digest: the read
// that reaches the end, or Close, returns an error when the content does
// not match.
func (s *Store) Open(ctx context.Context, d string) (io.ReadCloser, error) {
	if err := kiln.ValidateDigest("digest", d); err != nil {
		return nil, err
	}
	repo, err := s.repo(ctx, s.loc.Repository)
	if err != nil {
		return nil, err
	}
	desc, rc, err := repo.Blobs().FetchReference(ctx, d)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "artifact %s is not in the registry repository %s", d, s.loc)
	}
	if err != nil {
		return nil, s.fail(err, "read artifact %s from %s", d, s.loc)
	}
	return newVerifier(ctx, rc, desc.Digest.String(), desc.Size, "artifact "+d+" in "+s.loc.String()), nil
}

// Stat reports an artifact's size without reading it.
func (s *Store) Stat(ctx context.Context, d string) (*kiln.Artifact, error) {
	if err := kiln.ValidateDigest("digest", d); err != nil {
		return nil, err
	}
	repo, err := s.repo(ctx, s.loc.Repository)
	if err != nil {
		return nil, err
	}
	desc, err := repo.Blobs().Resolve(ctx, d)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "artifact %s is not in the registry repository %s", d, s.loc)
	}
	if err != nil {
		return nil, s.fail(err, "look up artifact %s in %s", d, s.loc)
	}
	return &kiln.Artifact{Ref: s.ref(d), Digest: d, Size: desc.Size}, nil
}

// Delete removes an artifact's blob from the store's repository. Deleting
// a missing artifact is not an error. The registry must allow deletes, and
// frees the space only when its own garbage collection runs.
func (s *Store) Delete(ctx context.Context, d string) error {
	if err := kiln.ValidateDigest("digest", d); err != nil {
		return err
	}
	repo, err := s.repo(ctx, s.loc.Repository)
	if err != nil {
		return err
	}
	err = repo.Blobs().Delete(ctx, ocispec.Descriptor{Digest: digest.Digest(d)})
	if err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return s.fail(err, "delete artifact %s from %s", d, s.loc)
	}
	return nil
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

// verifier hashes what is read from the registry and compares digest and
// size at EOF and at Close.
type verifier struct {
	ctx     context.Context
	rc      io.ReadCloser
	h       hash.Hash
	want    string // sha256:<hex>
	size    int64  // expected, -1 when unknown
	n       int64
	what    string // "layer sha256:… of appserver:3 in oci://…"
	eof     bool
	checked error
}

func newVerifier(ctx context.Context, rc io.ReadCloser, want string, size int64, what string) *verifier {
	return &verifier{ctx: ctx, rc: rc, h: sha256.New(), want: want, size: size, what: what}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.checked != nil {
		return 0, v.checked
	}
	if err := v.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := v.rc.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if v.size >= 0 && v.n > v.size {
		v.checked = kiln.Errorf(kiln.EINTERNAL, "%s is corrupted: the registry sent more than its %d bytes; delete it from the registry and push it again", v.what, v.size)
		return n, v.checked
	}
	if errors.Is(err, io.EOF) {
		v.eof = true
		if cerr := v.check(); cerr != nil {
			return n, cerr
		}
	}
	return n, err
}

func (v *verifier) check() error {
	got := "sha256:" + hex.EncodeToString(v.h.Sum(nil))
	switch {
	case v.size >= 0 && v.n != v.size:
		v.checked = kiln.Errorf(kiln.EINTERNAL, "%s is corrupted: the registry sent %d bytes, not %d; delete it from the registry and push it again", v.what, v.n, v.size)
	case got != v.want:
		v.checked = kiln.Errorf(kiln.EINTERNAL, "%s is corrupted: its content hashes to %s; delete it from the registry and push it again", v.what, got)
	}
	return v.checked
}

// Close checks the digest when the reader was read to the end, or nearly:
// a tar reader stops at the end-of-archive marker, so up to 1 MiB left
// unread is read and checked here. A caller that gave up earlier is not
// told about corruption it did not read.
func (v *verifier) Close() error {
	if !v.eof && v.checked == nil && (v.size < 0 || v.size-v.n <= 1<<20) {
		_, _ = io.Copy(io.Discard, io.LimitReader(v, 1<<20+1)) // Read checks at EOF
	}
	cerr := v.rc.Close()
	if v.checked != nil {
		return v.checked
	}
	return cerr
}

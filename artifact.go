package kiln

import (
	"context"
	"io"
)

// ArtifactStore keeps image artifacts (root filesystem tarballs, layers),
// addressed by the sha256 digest of their content. The local directory is
// the default; an OCI registry can implement the same interface.
//
// Put writes to a temporary name and makes the artifact visible only when it
// is complete and its digest computed. Open verifies the digest while the
// caller reads: the reader's Close (or the read reaching EOF) returns an
// error when the content does not match.
type ArtifactStore interface {
	Put(ctx context.Context, r io.Reader) (*Artifact, error)
	Open(ctx context.Context, digest string) (io.ReadCloser, error)
	Stat(ctx context.Context, digest string) (*Artifact, error)
	Delete(ctx context.Context, digest string) error
}

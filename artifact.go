package kiln

import (
	"context"
	"io"
	"regexp"
)

// Artifact locates a version's image content in an ArtifactStore.
type Artifact struct {
	// Ref is where the artifact lives, e.g. "local:sha256:…" or an OCI reference.
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

var digestRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// ValidateDigest checks a "sha256:<64 lowercase hex>" digest.
func ValidateDigest(field, d string) error {
	if !digestRE.MatchString(d) {
		return FieldErrorf(EINVALID, field, "digest %q is not valid; write sha256: followed by 64 lowercase hex digits", d)
	}
	return nil
}

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

package platformtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"github.com/kiln-project/kiln"
)

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

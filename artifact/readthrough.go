package artifact

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/kiln-project/kiln"
)

// ReadThrough is the artifact store of a kiln that keeps its artifacts in
// a remote store (an OCI registry, --artifacts oci://…) with this
// machine's local Store as a verified cache in front of it.
//
// Reads try the local store first; an artifact it lacks is pulled from
// the remote store into it (its digest checked while it streams: content
// that does not match is not kept) and read from there, so the local
// platform, which needs a file to unpack, and a build on another machine's
// version both work from the registry. Put writes locally only: build
// steps keep their layer tarballs on the machine that made them, and a
// version's artifact reaches the registry when the version is registered
// (cmd/kiln publishes it). Delete removes the local copy only; what the
// registry keeps is for `kiln artifact gc`.
type ReadThrough struct {
	Local  *Store
	Remote kiln.ArtifactStore
}

var _ kiln.ArtifactStore = (*ReadThrough)(nil)

// Put keeps r in the local store.
func (s *ReadThrough) Put(ctx context.Context, r io.Reader) (*kiln.Artifact, error) {
	return s.Local.Put(ctx, r)
}

// Open reads the artifact from the local store, pulling it from the
// remote store first when the local store does not have it.
func (s *ReadThrough) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	rc, err := s.Local.Open(ctx, digest)
	if kiln.ErrorCode(err) != kiln.ENOTFOUND {
		return rc, err
	}
	if err := s.Pull(ctx, digest); err != nil {
		return nil, err
	}
	return s.Local.Open(ctx, digest)
}

// Pull copies the artifact from the remote store into the local one
// unless it is there, checking its digest as it streams.
func (s *ReadThrough) Pull(ctx context.Context, digest string) error {
	if _, err := s.Local.Stat(ctx, digest); err == nil {
		return nil
	}
	rc, err := s.Remote.Open(ctx, digest)
	if err != nil {
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			return kiln.Errorf(kiln.ENOTFOUND, "artifact %s is neither in the local store %s nor in %s: it was deleted (kiln artifact gc), or the machine that built it never pushed it; rebuild the version", digest, s.Local.Dir(), s.Remote)
		}
		return err
	}
	a, err := s.Local.Put(ctx, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr // the remote reader's digest check
	}
	if err != nil {
		if a != nil {
			_ = s.Local.Delete(ctx, a.Digest)
		}
		return fmt.Errorf("pull artifact %s from %s: %w", digest, s.Remote, err)
	}
	if a.Digest != digest { // the remote reader fails first; belt and braces
		_ = s.Local.Delete(ctx, a.Digest)
		return kiln.Errorf(kiln.EINTERNAL, "artifact %s pulled from %s hashes to %s; it is corrupted in the registry: delete it there and push the version again", digest, s.Remote, a.Digest)
	}
	return nil
}

// Stat reports the artifact from the local store, or else the remote one.
func (s *ReadThrough) Stat(ctx context.Context, digest string) (*kiln.Artifact, error) {
	a, err := s.Local.Stat(ctx, digest)
	if kiln.ErrorCode(err) != kiln.ENOTFOUND {
		return a, err
	}
	return s.Remote.Stat(ctx, digest)
}

// Delete removes the local copy; the registry's is kiln artifact gc's.
func (s *ReadThrough) Delete(ctx context.Context, digest string) error {
	return s.Local.Delete(ctx, digest)
}

// CleanTemp removes what interrupted local writes left.
func (s *ReadThrough) CleanTemp(ctx context.Context, age time.Duration) ([]string, error) {
	return s.Local.CleanTemp(ctx, age)
}

// String names both stores.
func (s *ReadThrough) String() string {
	return fmt.Sprintf("%v (cached in %s)", s.Remote, s.Local.Dir())
}

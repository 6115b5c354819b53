package sign

import (
	"context"
	"crypto"
	"fmt"
	"io"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
)

// EnvelopeAttachment names the DSSE envelope kept with every version.
const EnvelopeAttachment = "provenance.dsse.json"

// Seal signs a version as it is recorded; the registry stores the returned
// envelope in the same transaction as the version (see kiln.NewVersion.Seal),
// so there is never a version without its signature. Versions without an
// artifact (recorded by hand, imported from Packer manifests) have nothing
// to bind a signature to and get none; they cannot be launched either. An
// external artifact (method external: a reference, no digest) is treated
// the same.
func (s *Signer) Seal(v *kiln.Version) (*kiln.Attachment, error) {
	if v.Provenance.Artifact == nil || v.Provenance.Artifact.External() {
		return nil, nil
	}
	env, err := s.SignVersion(v)
	if err != nil {
		return nil, err
	}
	return &kiln.Attachment{Name: EnvelopeAttachment, MediaType: "application/vnd.dsse.envelope.v1+json", Data: env}, nil
}

// CheckVersion verifies the signature kept with v against keys (any one
// of them may have signed it): the signed
// statement must name v's artifact digest and provenance. With rehash, the
// artifact is also read back from arts and its content hashed (slow for big
// images); without it, the platform's own digest check on unpacking is
// relied upon.
func CheckVersion(ctx context.Context, reg kiln.Registry, arts kiln.ArtifactStore, keys []crypto.PublicKey, v *kiln.Version, rehash bool) error {
	if v.Provenance.Artifact == nil {
		return kiln.Errorf(kiln.EINVALID, "%s has no artifact; there is nothing to verify or launch", v.Name)
	}
	if a := v.Provenance.Artifact; a.External() {
		return kiln.Errorf(kiln.EINVALID, "%s is an external image (%s): kiln keeps its record, not its content, so there is nothing to verify or launch here; launch it where it lives", v.Name, a.Ref)
	}
	att, err := reg.Attachment(ctx, v.Ref(), EnvelopeAttachment)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return kiln.Errorf(kiln.ECONFLICT, "%s has no signed provenance; it was not recorded by this kiln (or its signature was removed) and will not be launched", v.Name)
	}
	if err != nil {
		return err
	}
	if err := VerifyVersionWith(keys, att.Data, v); err != nil {
		return fmt.Errorf("%s: %w", v.Name, err)
	}
	if !rehash {
		return nil
	}
	for _, d := range v.Provenance.Artifacts {
		if err := rehashBlob(ctx, arts, v.Name+": "+string(d.Format), d.Digest); err != nil {
			return err
		}
	}
	a := v.Provenance.Artifact
	if !a.Layered() {
		return rehashBlob(ctx, arts, v.Name, a.Digest)
	}
	// A layered artifact: the signed digest names its layer list, which
	// must match the layers recorded; every layer is read and checked
	// against its digest and diff ID.
	ls, err := layer.Layers(ctx, arts, a)
	if err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "%s: %v", v.Name, err)
	}
	for i, l := range ls {
		rc, err := layer.Open(ctx, arts, l)
		if err != nil {
			return fmt.Errorf("%s: layer %d: %w", v.Name, i, err)
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return kiln.Errorf(kiln.ECONFLICT, "%s: layer %d (%s) does not match what the signed artifact %s says: %v", v.Name, i, l.Digest, a.Digest, err)
		}
	}
	return nil
}

// rehashBlob reads a blob back and lets the store check its digest.
func rehashBlob(ctx context.Context, arts kiln.ArtifactStore, name, digest string) error {
	rc, err := arts.Open(ctx, digest)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		rc.Close()
		return kiln.Errorf(kiln.ECONFLICT, "%s: the stored artifact does not match its digest %s: %v", name, digest, err)
	}
	if err := rc.Close(); err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "%s: the stored artifact does not match its digest %s: %v", name, digest, err)
	}
	return nil
}

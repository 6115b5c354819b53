package main

import (
	"context"
	"crypto"
	"fmt"
	"io"
	"strconv"
	"strings"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact/oci"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/sign"
)

var _ cli.ImageVerifier = verifyImage

// verifyImage is `kiln version verify oci://HOST/REPOSITORY/IMAGE:N`:
// the version checked with the registry and keys alone, in the order that
// fails cheapest first: the manifest and config (an OCI image kiln
// pushed), the signed provenance attached to it (any of keys), the signed
// artifact against the image's layer list, then every layer pulled and
// hashed (blob digest and size, and the uncompressed tar's diff ID), then
// the disk images the statement signs, from the store's repository.
// Nothing is written anywhere: no database, no data directory.
func verifyImage(ctx context.Context, cfg cli.Config, ref string, keys []crypto.PublicKey, signatureOnly bool) (*cli.RegistryVerification, error) {
	ir, err := oci.ParseImageRef("version", ref)
	if err != nil {
		return nil, err
	}
	st, err := oci.Open(ir.Location.String(), oci.Options{
		CredentialsFile: cfg.ArtifactsCredentials,
		CAFile:          cfg.ArtifactsCA,
		PlainHTTP:       cfg.ArtifactsPlainHTTP,
		UserAgent:       "kiln/" + version,
	})
	if err != nil {
		return nil, err
	}
	p, err := st.PullVersion(ctx, ir.Image, ir.Reference)
	if err != nil {
		return nil, err
	}
	at := fmt.Sprintf("%s (%s)", ir, p.Digest)
	if p.Envelope == nil {
		return nil, kiln.Errorf(kiln.ECONFLICT, "%s has no signed provenance attached (no referrer of type %s, nor a sha256-%s tag); it cannot be verified: push the version with `kiln artifact push %s-%d` from the kiln that built it",
			at, oci.ArtifactTypeDSSE, p.Digest[len("sha256:"):], ir.Image, p.Number)
	}
	v, keyID, err := sign.VerifySigned(keys, p.Envelope, "the provenance attached to "+at)
	if err != nil {
		if msg := kiln.ErrorMessage(err); strings.Contains(msg, "does not verify with key") {
			return nil, &kiln.Error{Code: kiln.ErrorCode(err), Err: err, Message: msg +
				"; give the public key of the kiln that built it with --key FILE (`kiln key export` there)"}
		}
		return nil, err
	}
	if err := matchSigned(at, ir, p, v); err != nil {
		return nil, err
	}
	a := v.Provenance.Artifact
	r := &cli.RegistryVerification{
		Version: v.Name, Image: v.Image, Number: v.Number, SemVer: v.SemVer,
		Ref: p.Ref, Provenance: p.Provenance, KeyID: keyID, Artifact: a.Digest,
		ContentRead: !signatureOnly,
	}
	signed := signedLayers(a)
	for i, l := range signed {
		r.Layers = append(r.Layers, cli.VerifiedBlob{Digest: l.Digest, Size: l.Size, MediaType: l.MediaType, DiffID: l.DiffID})
		if signatureOnly {
			continue
		}
		what := fmt.Sprintf("layer %d of %d of %s", i+1, len(signed), ir)
		if err := readLayer(ctx, st, ir.Image, p.Layers[i], l); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			return nil, &kiln.Error{Code: kiln.ErrorCode(err), Err: err, Message: what + ": " + kiln.ErrorMessage(err)}
		}
		r.Bytes += l.Size
	}
	for _, d := range v.Provenance.Artifacts {
		r.DiskImages = append(r.DiskImages, cli.VerifiedBlob{Digest: d.Digest, Size: d.Size, Format: string(d.Format)})
		if signatureOnly {
			continue
		}
		if err := readDiskImage(ctx, st, d, v.Name, at); err != nil {
			return nil, err
		}
		r.Bytes += d.Size
	}
	return r, nil
}

// matchSigned checks that the image is the version the verified
// statement is about: the same image and number (and semver, when the
// reference is its tag), and exactly the signed layers in order, with
// their media types, sizes and diff IDs.
func matchSigned(at string, ir oci.ImageRef, p *oci.Pulled, v *kiln.Version) error {
	switch {
	case v.Image != ir.Image || v.Number != p.Number:
		return kiln.Errorf(kiln.ECONFLICT, "the provenance attached to %s is signed for %s, but the image is %s-%d: the envelope belongs to another version; do not trust the image, and push the version again with `kiln artifact push %s-%d` from the kiln that built it",
			at, v.Name, ir.Image, p.Number, ir.Image, p.Number)
	case ir.Reference != p.Digest && ir.Reference != strconv.Itoa(v.Number) && (v.SemVer == "" || ir.Reference != oci.SemVerTag(v.SemVer)):
		return kiln.Errorf(kiln.ECONFLICT, "tag %s of %s names %s, whose signed provenance says it is %s (semver %q): the tag was moved; do not trust it, and verify the version by its number or digest",
			ir.Reference, ir.Location.String()+"/"+ir.Image, p.Digest, v.Name, v.SemVer)
	}
	signed := signedLayers(v.Provenance.Artifact)
	if len(signed) != len(p.Layers) {
		return kiln.Errorf(kiln.ECONFLICT, "%s has %d layer(s), but the signed artifact %s of %s has %d: the image is not the signed version's; do not trust it, and push the version again with `kiln artifact push %s`",
			at, len(p.Layers), v.Provenance.Artifact.Digest, v.Name, len(signed), v.Name)
	}
	for i, l := range signed {
		got := p.Layers[i]
		diffID := got.DiffID
		if diffID == "" {
			diffID = got.Digest
		}
		if got.Digest != l.Digest || got.Size != l.Size || got.MediaType != l.MediaType || diffID != l.DiffID {
			return kiln.Errorf(kiln.ECONFLICT, "layer %d of %s is %s (%s, %d bytes, diff ID %s), but the signed artifact %s of %s has %s (%s, %d bytes, diff ID %s): the image is not the signed version's; do not trust it, and push the version again with `kiln artifact push %s`",
				i+1, at, got.Digest, got.MediaType, got.Size, diffID, v.Provenance.Artifact.Digest, v.Name, l.Digest, l.MediaType, l.Size, l.DiffID, v.Name)
		}
	}
	return nil
}

// signedLayers are the layers a signed artifact is made of: a layered
// artifact's own, a single tar as one uncompressed layer.
func signedLayers(a *kiln.Artifact) []kiln.Layer {
	if a.Layered() {
		return a.Layers
	}
	return []kiln.Layer{layer.Tar(a)}
}

// readLayer pulls one layer, hashing the blob (digest, size) and its
// uncompressed tar (diff ID) as it streams; nothing is kept. When the tar
// cannot be read, the blob is read again on its own, so that a blob that
// does not match its digest is reported as such rather than as bad gzip.
func readLayer(ctx context.Context, st *oci.Store, image string, pl oci.Layer, l kiln.Layer) error {
	blob, err := st.OpenLayer(ctx, image, pl)
	if err != nil {
		return err
	}
	tr, err := layer.Uncompress(blob, l)
	if err == nil {
		_, err = io.Copy(io.Discard, tr)
		if cerr := tr.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	if berr := drainLayer(ctx, st, image, pl); berr != nil {
		return berr
	}
	return kiln.Errorf(kiln.ECONFLICT, "the blob matches its digest, but its content is not the signed layer (%s); do not trust the image", kiln.ErrorMessage(err))
}

// drainLayer reads a layer blob to its end, checking digest and size.
func drainLayer(ctx context.Context, st *oci.Store, image string, l oci.Layer) error {
	rc, err := st.OpenLayer(ctx, image, l)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return err
}

// readDiskImage reads a signed disk image from the store's repository,
// where kiln uploads every blob of a version's content.
func readDiskImage(ctx context.Context, st *oci.Store, d kiln.Artifact, name, at string) error {
	rc, err := st.Open(ctx, d.Digest)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return kiln.Errorf(kiln.ENOTFOUND, "the %s disk image %s that the provenance of %s signs is not in %s: push the version with `kiln artifact push %s` from the kiln that built it", d.Format, d.Digest, at, st, name)
	}
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("the %s disk image of %s: %w", d.Format, name, err)
	}
	return nil
}

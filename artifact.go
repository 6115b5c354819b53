package kiln

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

// Artifact locates a version's image content in an ArtifactStore, or,
// for a version of method external, outside kiln.
//
// An artifact is one of two kinds:
//
//   - layered (Layers not empty): an ordered stack of OCI image layers,
//     bottom first — the base's (or, for a reheat, the parent's) layers
//     followed by the version's own. Digest is then the digest of the
//     artifact's layer list (a small JSON document, LayerListMediaType,
//     kept in the store beside the layers; EncodeLayerList), so the one
//     digest the signed provenance names covers every layer; Size is the
//     sum of the layers' blob sizes.
//   - a single tar (Layers empty): the whole root filesystem as one
//     uncompressed tar, Digest its sha256, Size its length. Versions built
//     before layers were recorded, and origin artifacts, are of this kind.
type Artifact struct {
	// Ref is where the artifact lives, e.g. "local:sha256:…", an OCI
	// reference, or "packer:amazon-ebs:us-east-1:ami-0abc…" for an external one.
	Ref string `json:"ref"`
	// Digest is empty only for an external artifact.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Format is set on a version's further artifacts (Provenance.Artifacts:
	// qcow2, raw); empty on its main artifact, the root filesystem.
	Format ArtifactFormat `json:"format,omitempty"`
	// Layers, bottom first; empty for a single-tar or external artifact.
	Layers []Layer `json:"layers,omitempty"`
}

// Layer is one OCI image layer of a layered artifact: a tar of the
// changes to the layers below it (OCI whiteouts ".wh.NAME" for deletions,
// ".wh..wh..opq" for a directory that hides what is below it), usually
// compressed, kept in the ArtifactStore under the digest of its blob.
type Layer struct {
	// Digest is the sha256 of the blob as stored (compressed).
	Digest string `json:"digest"`
	// DiffID is the sha256 of the uncompressed tar (OCI's diff ID): the
	// same tree gives the same DiffID whatever the compression.
	DiffID string `json:"diff_id"`
	// Size is the blob's length in bytes.
	Size int64 `json:"size"`
	// MediaType is one of the OCI layer media types (LayerMediaTypeGzip,
	// LayerMediaTypeZstd, LayerMediaTypeTar).
	MediaType string `json:"media_type"`
}

// The OCI layer media types kiln reads; it writes gzip.
const (
	LayerMediaTypeTar  = "application/vnd.oci.image.layer.v1.tar"
	LayerMediaTypeGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	LayerMediaTypeZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
	// LayerListMediaType is the layer list a layered artifact's Digest
	// names.
	LayerListMediaType = "application/vnd.kiln.layers.v1+json"
)

// MaxLayers bounds a layered artifact's stack: a build that would pass it
// stores the whole root filesystem as one layer instead (docs/building.md).
const MaxLayers = 24

// Layered reports whether a is a stack of layers rather than one tar.
func (a *Artifact) Layered() bool { return a != nil && len(a.Layers) > 0 }

// Validate checks a layer, naming field in its errors.
func (l Layer) Validate(field string) error {
	if err := ValidateDigest(field+".digest", l.Digest); err != nil {
		return err
	}
	if err := ValidateDigest(field+".diff_id", l.DiffID); err != nil {
		return err
	}
	if l.Size < 0 {
		return FieldErrorf(EINVALID, field+".size", "layer size %d is negative", l.Size)
	}
	switch l.MediaType {
	case LayerMediaTypeTar, LayerMediaTypeGzip, LayerMediaTypeZstd:
	default:
		return FieldErrorf(EINVALID, field+".media_type", "layer media type %q is not an OCI layer type; use %s, %s or %s", l.MediaType, LayerMediaTypeGzip, LayerMediaTypeZstd, LayerMediaTypeTar)
	}
	if l.MediaType == LayerMediaTypeTar && l.DiffID != l.Digest {
		return FieldErrorf(EINVALID, field+".diff_id", "an uncompressed layer's diff_id is its digest %s, not %s", l.Digest, l.DiffID)
	}
	return nil
}

// layerList is the stored form of a layered artifact's layer list.
type layerList struct {
	SchemaVersion int     `json:"schemaVersion"`
	MediaType     string  `json:"mediaType"`
	Layers        []Layer `json:"layers"`
}

// EncodeLayerList returns the canonical layer list document of layers
// (compact JSON, fields in a fixed order): the same layers always give
// the same bytes, hence the same artifact digest.
func EncodeLayerList(layers []Layer) ([]byte, error) {
	if len(layers) == 0 {
		return nil, FieldErrorf(EINVALID, "layers", "a layered artifact needs at least one layer")
	}
	for i, l := range layers {
		if err := l.Validate(fmt.Sprintf("layers[%d]", i)); err != nil {
			return nil, err
		}
	}
	return json.Marshal(layerList{SchemaVersion: 1, MediaType: LayerListMediaType, Layers: layers})
}

// DecodeLayerList reads a layer list document, refusing anything that is
// not one or that EncodeLayerList would not have written byte for byte.
func DecodeLayerList(b []byte) ([]Layer, error) {
	var l layerList
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, Errorf(EINVALID, "the artifact is not a kiln layer list: %v", err)
	}
	if l.SchemaVersion != 1 || l.MediaType != LayerListMediaType {
		return nil, Errorf(EINVALID, "the artifact is not a kiln layer list (schemaVersion %d, mediaType %q; want 1, %s)", l.SchemaVersion, l.MediaType, LayerListMediaType)
	}
	canon, err := EncodeLayerList(l.Layers)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(canon, b) {
		return nil, Errorf(EINVALID, "the layer list is not in canonical form; it was not written by kiln")
	}
	return l.Layers, nil
}

// External reports whether a is a reference to an image kept outside kiln
// (a cloud image id): it has no digest, so kiln cannot sign, verify or
// launch it. A nil artifact is not external.
func (a *Artifact) External() bool { return a != nil && a.Digest == "" }

// ExternalNames returns what a server may name an external artifact by
// when it checks in (Checkin.Artifact): the reference itself, and for a
// Packer artifact "packer:BUILDER:ID" also the artifact id ID that Packer
// printed ("us-east-1:ami-0abc…") and, when an amazon-ebs build copied
// the AMI to several regions ("us-east-1:ami-0abc,eu-west-1:ami-0fed"),
// each region's "REGION:AMI" on its own.
func ExternalNames(ref string) []string {
	if ref == "" {
		return nil
	}
	out := []string{ref}
	rest, ok := strings.CutPrefix(ref, "packer:")
	if !ok {
		return out
	}
	_, id, ok := strings.Cut(rest, ":")
	if !ok || id == "" {
		return out
	}
	out = append(out, id)
	if parts := strings.Split(id, ","); len(parts) > 1 {
		for _, p := range parts {
			if p != "" && !slices.Contains(out, p) {
				out = append(out, p)
			}
		}
	}
	return out
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

// ArtifactFormat says what an artifact holds. A version's main artifact
// (Provenance.Artifact) is its root filesystem; the disk images built from
// it are further artifacts (Provenance.Artifacts), one per disk format.
type ArtifactFormat string

// The artifact formats kiln builds.
const (
	// FormatRootfs is the root filesystem tarball every build produces;
	// the local platform boots it.
	FormatRootfs ArtifactFormat = "rootfs"
	// FormatQCOW2 is a bootable GPT disk image in QEMU's qcow2 format;
	// the VM platform boots it.
	FormatQCOW2 ArtifactFormat = "qcow2"
	// FormatRaw is the same disk image as a raw (sparse) file.
	FormatRaw ArtifactFormat = "raw"
)

// ArtifactFormats are the formats an image line may declare, in the
// order they are built.
var ArtifactFormats = []ArtifactFormat{FormatRootfs, FormatQCOW2, FormatRaw}

// Disk reports whether f is a bootable disk image format.
func (f ArtifactFormat) Disk() bool { return f == FormatQCOW2 || f == FormatRaw }

// ParseArtifactFormat parses a format name. "oci" is refused with a
// pointer to where OCI images come from.
func ParseArtifactFormat(field, s string) (ArtifactFormat, error) {
	switch f := ArtifactFormat(s); f {
	case FormatRootfs, FormatQCOW2, FormatRaw:
		return f, nil
	case "oci":
		return "", FieldErrorf(EINVALID, field, "oci is not made by a build: with a registry as kiln's artifact store every version is pushed as an OCI image; run kiln with --artifacts oci://REGISTRY/REPO instead (docs/registry.md), and list only rootfs, qcow2 or raw here")
	}
	return "", FieldErrorf(EINVALID, field, "unknown artifact format %q; use rootfs, qcow2 or raw", s)
}

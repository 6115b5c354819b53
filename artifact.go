package kiln

import (
	"context"
	"io"
	"regexp"
)

// Artifact locates a version's image content in an ArtifactStore, or,
// for a version of method external, outside kiln.
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
}

// External reports whether a is a reference to an image kept outside kiln
// (a cloud image id): it has no digest, so kiln cannot sign, verify or
// launch it. A nil artifact is not external.
func (a *Artifact) External() bool { return a != nil && a.Digest == "" }

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

package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/kiln-project/kiln"
)

// Media types of what a version is made of.
const (
	// MediaTypeLayer is kiln's artifact format: an uncompressed POSIX tar
	// of a root filesystem (or of an overlay upper directory, with .wh.
	// whiteouts), which is an OCI layer as it is.
	MediaTypeLayer = ocispec.MediaTypeImageLayer
	// MediaTypeLayerGzip and MediaTypeLayerZstd are compressed layers.
	MediaTypeLayerGzip = ocispec.MediaTypeImageLayerGzip
	MediaTypeLayerZstd = ocispec.MediaTypeImageLayerZstd
	// ArtifactTypeDSSE is the artifact type (and layer media type) of the
	// provenance envelope attached to a version's manifest.
	ArtifactTypeDSSE = "application/vnd.dsse.envelope.v1+json"
	// ArtifactTypeSPDX and ArtifactTypeCycloneDX are the artifact types of
	// a version's SBOM attestations attached to its manifest: the one
	// layer is the signed DSSE envelope (ArtifactTypeDSSE) of an in-toto
	// statement whose predicate is the SBOM, and the manifest's
	// AnnotationPredicateType says which.
	ArtifactTypeSPDX      = "application/spdx+json"
	ArtifactTypeCycloneDX = "application/vnd.cyclonedx+json"
	// AnnotationPredicateType is the in-toto predicate type of an
	// attestation's statement, on its manifest.
	AnnotationPredicateType = "in-toto.io/predicate-type"
)

// Labels in a version's image config (and annotations on its manifest).
const (
	LabelImage   = "dev.kiln.image"   // the image line, e.g. appserver
	LabelVersion = "dev.kiln.version" // the version number, e.g. 3
	// LabelReleasePrefix starts one label per /etc/kiln-release field:
	// dev.kiln.release.definition_digest, dev.kiln.release.method, …
	LabelReleasePrefix = "dev.kiln.release."
)

// maxMetadata bounds the manifests and configs kiln reads.
const maxMetadata = 4 << 20

// Layer is one layer of a version, bottom first in Version.Layers.
type Layer struct {
	// MediaType is MediaTypeLayer (the default), MediaTypeLayerGzip or
	// MediaTypeLayerZstd.
	MediaType string `json:"media_type"`
	// Digest and Size are the blob's, as stored.
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// DiffID is the digest of the uncompressed tar; empty means Digest
	// (an uncompressed layer).
	DiffID string `json:"diff_id,omitempty"`
}

// Version is what is pushed for one version of an image: its layers and
// what the config says about it.
type Version struct {
	Image  string
	Number int
	// SemVer, when set, is pushed as a second tag (with '+' written '_').
	SemVer string
	// Release holds the /etc/kiln-release fields (key=value), each
	// pushed as a label dev.kiln.release.KEY.
	Release map[string]string
	// Created is the build time, written in the config; with the same
	// layers and fields the manifest is byte-identical, so a repeated
	// push is a no-op.
	Created time.Time
	// Architecture is the image's GOARCH-style architecture; empty is
	// the running one.
	Architecture string
	Layers       []Layer
	// MountFrom names images whose repositories may hold some of the
	// layers already (the base's): those are mounted, not uploaded.
	MountFrom []string
	// Envelope is the signed provenance (a DSSE envelope), attached as a
	// referrer of the manifest before the version is tagged.
	Envelope []byte
	// Attestations are the version's other signed documents (its SBOMs),
	// attached as referrers after the provenance, before the tags.
	Attestations []Attestation
}

// Attestation is a signed document about a version attached to its
// manifest as an OCI referrer: an image manifest of ArtifactType with the
// empty config and the DSSE envelope as its one layer.
type Attestation struct {
	// ArtifactType is ArtifactTypeSPDX or ArtifactTypeCycloneDX.
	ArtifactType string
	// PredicateType is the in-toto predicate type of the statement in
	// the envelope, annotated on the manifest.
	PredicateType string
	// Envelope is the DSSE envelope.
	Envelope []byte
}

func (a Attestation) validate(f string) error {
	switch a.ArtifactType {
	case ArtifactTypeSPDX, ArtifactTypeCycloneDX:
	default:
		return kiln.FieldErrorf(kiln.EINVALID, f, "artifact type %q is not an attestation kiln attaches; use %s or %s", a.ArtifactType, ArtifactTypeSPDX, ArtifactTypeCycloneDX)
	}
	if len(a.Envelope) == 0 || !json.Valid(a.Envelope) {
		return kiln.FieldErrorf(kiln.EINVALID, f, "the %s attestation is not a JSON DSSE envelope", a.ArtifactType)
	}
	return nil
}

// Pushed says where a pushed version is.
type Pushed struct {
	// Digest is the image manifest's digest.
	Digest string
	// Ref is oci://HOST/REPOSITORY/IMAGE@sha256:…
	Ref string
	// Tags are the tags that name it: the number and the semver.
	Tags []string
	// Uploaded is how many layer bytes went over the wire; layers the
	// registry had (in this repository, mounted from another) are not.
	Uploaded int64
}

// Pulled is a version read from the registry: what its config says, its
// layers, and its provenance envelope.
type Pulled struct {
	Version
	Digest string
	Ref    string
	// Provenance is the referrer holding Envelope,
	// oci://HOST/REPOSITORY/IMAGE@sha256:…; empty when there is none.
	Provenance string
}

// tagRE is the distribution spec's tag grammar.
var tagRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$`)

// SemVerTag returns the tag a semantic version is pushed under.
func SemVerTag(semver string) string {
	return strings.ReplaceAll(semver, "+", "_")
}

func (v *Version) validate() error {
	if err := kiln.ValidateImageName(v.Image); err != nil {
		return err
	}
	if v.Number < 1 {
		return kiln.FieldErrorf(kiln.EINVALID, "number", "version number %d is not ≥ 1", v.Number)
	}
	if v.SemVer != "" && !tagRE.MatchString(SemVerTag(v.SemVer)) {
		return kiln.FieldErrorf(kiln.EINVALID, "semver", "%q cannot be an OCI tag (letters, digits, . _ -, at most 128)", v.SemVer)
	}
	if len(v.Layers) == 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "layers", "version %s-%d has no layer", v.Image, v.Number)
	}
	for i, l := range v.Layers {
		f := fmt.Sprintf("layers[%d]", i)
		if err := kiln.ValidateDigest(f, l.Digest); err != nil {
			return err
		}
		if l.DiffID != "" {
			if err := kiln.ValidateDigest(f+".diff_id", l.DiffID); err != nil {
				return err
			}
		}
		switch l.MediaType {
		case "", MediaTypeLayer:
		case MediaTypeLayerGzip, MediaTypeLayerZstd:
			if l.DiffID == "" {
				return kiln.FieldErrorf(kiln.EINVALID, f, "a compressed layer needs its diff_id (the digest of the uncompressed tar)")
			}
		default:
			return kiln.FieldErrorf(kiln.EINVALID, f, "media type %q is not a layer kiln pushes; use %s, %s or %s", l.MediaType, MediaTypeLayer, MediaTypeLayerGzip, MediaTypeLayerZstd)
		}
	}
	for _, m := range v.MountFrom {
		if err := kiln.ValidateImageName(m); err != nil {
			return err
		}
	}
	for i, a := range v.Attestations {
		if err := a.validate(fmt.Sprintf("attestations[%d]", i)); err != nil {
			return err
		}
	}
	return nil
}

func (l Layer) descriptor() ocispec.Descriptor {
	mt := l.MediaType
	if mt == "" {
		mt = MediaTypeLayer
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.Digest(l.Digest), Size: l.Size}
}

func (l Layer) diffID() string {
	if l.DiffID != "" {
		return l.DiffID
	}
	return l.Digest
}

// labels returns what the config and the manifest say about v.
func (v *Version) labels() map[string]string {
	m := map[string]string{
		LabelImage:                        v.Image,
		LabelVersion:                      strconv.Itoa(v.Number),
		ocispec.AnnotationTitle:           fmt.Sprintf("%s-%d", v.Image, v.Number),
		ocispec.AnnotationVersion:         strconv.Itoa(v.Number),
		"org.opencontainers.image.vendor": "kiln",
	}
	if v.SemVer != "" {
		m[ocispec.AnnotationVersion] = v.SemVer
	}
	if !v.Created.IsZero() {
		m[ocispec.AnnotationCreated] = v.Created.UTC().Format(time.RFC3339)
	}
	for k, val := range v.Release {
		m[LabelReleasePrefix+k] = val
	}
	return m
}

// PushVersion pushes v as an OCI image to REPOSITORY/IMAGE, reading the
// layers it must upload from src. Order makes an interrupted push
// harmless: layers and config first, then the manifest by digest, then
// the provenance referrer, and the tags (number, semver) last, so no tag
// ever names content the registry does not have. A tag that already
// names another manifest is a conflict (version numbers are never
// reused).
func (s *Store) PushVersion(ctx context.Context, v *Version, src kiln.ArtifactStore) (*Pushed, error) {
	if err := v.validate(); err != nil {
		return nil, err
	}
	name := s.loc.image(v.Image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, err
	}
	at := fmt.Sprintf("%s:%d in %s", v.Image, v.Number, s.url(name))
	out := &Pushed{}
	layers := make([]ocispec.Descriptor, len(v.Layers))
	diffIDs := make([]digest.Digest, len(v.Layers))
	for i, l := range v.Layers {
		if l.Size == 0 {
			a, err := src.Stat(ctx, l.Digest)
			if err != nil {
				return nil, fmt.Errorf("push %s: layer %s: %w", at, l.Digest, err)
			}
			l.Size = a.Size
		}
		layers[i], diffIDs[i] = l.descriptor(), digest.Digest(l.diffID())
		n, err := s.ensureLayer(ctx, repo, layers[i], v.MountFrom, src, at)
		if err != nil {
			return nil, err
		}
		out.Uploaded += n
	}

	labels := v.labels()
	arch := v.Architecture
	if arch == "" {
		arch = runtime.GOARCH
	}
	cfg := ocispec.Image{
		Platform: ocispec.Platform{Architecture: arch, OS: "linux"},
		Config:   ocispec.ImageConfig{Labels: labels, Cmd: []string{"/sbin/init"}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
	if !v.Created.IsZero() {
		t := v.Created.UTC()
		cfg.Created = &t
	}
	cfgDesc, err := s.pushJSON(ctx, repo, ocispec.MediaTypeImageConfig, cfg, "config of "+at)
	if err != nil {
		return nil, err
	}
	man := ocispec.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   ocispec.MediaTypeImageManifest,
		Config:      cfgDesc,
		Layers:      layers,
		Annotations: labels,
	}
	mdesc, mbytes, err := s.pushManifest(ctx, repo, man, "manifest of "+at)
	if err != nil {
		return nil, err
	}
	if len(v.Envelope) > 0 {
		if _, err := s.attach(ctx, repo, mdesc, ArtifactTypeDSSE, nil, v.Envelope, "provenance of "+at); err != nil {
			return nil, err
		}
	}
	for _, a := range v.Attestations {
		if _, err := s.attach(ctx, repo, mdesc, a.ArtifactType, a.annotations(), a.Envelope, a.ArtifactType+" attestation of "+at); err != nil {
			return nil, err
		}
	}
	tags := []string{strconv.Itoa(v.Number)}
	if v.SemVer != "" {
		tags = append(tags, SemVerTag(v.SemVer))
	}
	for _, tag := range tags {
		if err := s.tag(ctx, repo, mdesc, mbytes, tag, name); err != nil {
			return nil, err
		}
	}
	out.Digest = mdesc.Digest.String()
	out.Ref = s.url(name) + "@" + out.Digest
	out.Tags = tags
	return out, nil
}

// ensureLayer makes the layer present in repo: there already, mounted
// from the store's own repository or an image in mountFrom, or uploaded
// from src. It returns the bytes uploaded.
func (s *Store) ensureLayer(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, mountFrom []string, src kiln.ArtifactStore, at string) (int64, error) {
	what := fmt.Sprintf("layer %s of %s", desc.Digest, at)
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return 0, s.fail(err, "check %s", what)
	}
	if ok {
		return 0, nil
	}
	from := append([]string{s.loc.Repository}, mountFrom...)
	for i, f := range from {
		if i > 0 {
			f = s.loc.image(f)
		}
		other, err := s.repo(ctx, f)
		if err != nil {
			return 0, err
		}
		if ok, err := other.Blobs().Exists(ctx, desc); err != nil || !ok {
			continue // no pull access there is no reason to fail: upload instead
		}
		uploaded := int64(0)
		get := func() (io.ReadCloser, error) {
			uploaded = desc.Size
			return src.Open(ctx, desc.Digest.String())
		}
		if err := repo.Mount(ctx, desc, f, get); err != nil {
			return 0, s.fail(err, "mount %s from %s", what, s.url(f))
		}
		return uploaded, nil
	}
	rc, err := src.Open(ctx, desc.Digest.String())
	if err != nil {
		return 0, fmt.Errorf("push %s: %w", what, err)
	}
	defer rc.Close()
	if err := repo.Blobs().Push(ctx, desc, rc); err != nil {
		return 0, s.fail(err, "upload %s", what)
	}
	return desc.Size, nil
}

// pushJSON pushes a small JSON blob unless the repository has it.
func (s *Store) pushJSON(ctx context.Context, repo *remote.Repository, mediaType string, v any, what string) (ocispec.Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return s.pushBytes(ctx, repo, mediaType, b, what)
}

func (s *Store) pushBytes(ctx context.Context, repo *remote.Repository, mediaType string, b []byte, what string) (ocispec.Descriptor, error) {
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return desc, s.fail(err, "check %s", what)
	}
	if !ok {
		if err := repo.Blobs().Push(ctx, desc, bytes.NewReader(b)); err != nil {
			return desc, s.fail(err, "upload %s", what)
		}
	}
	return desc, nil
}

// pushManifest pushes a manifest by digest (no tag). A manifest with a
// subject is indexed by oras-go: the registry's referrers API, or the
// sha256-<hex> tag where it has none.
func (s *Store) pushManifest(ctx context.Context, repo *remote.Repository, m ocispec.Manifest, what string) (ocispec.Descriptor, []byte, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b)), ArtifactType: m.ArtifactType}
	if err := repo.Manifests().Push(ctx, desc, bytes.NewReader(b)); err != nil {
		return desc, nil, s.fail(err, "push %s", what)
	}
	desc.ArtifactType = ""
	return desc, b, nil
}

func (a Attestation) annotations() map[string]string {
	if a.PredicateType == "" {
		return nil
	}
	return map[string]string{AnnotationPredicateType: a.PredicateType}
}

// attach pushes data, a DSSE envelope, as an OCI artifact of
// artifactType whose subject is the manifest, and returns the artifact
// manifest's digest. The same data attached again is the same manifest:
// a no-op for the registry.
func (s *Store) attach(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, artifactType string, annotations map[string]string, data []byte, what string) (string, error) {
	empty := ocispec.DescriptorEmptyJSON
	if _, err := s.pushBytes(ctx, repo, empty.MediaType, empty.Data, "empty config of "+what); err != nil {
		return "", err
	}
	layer, err := s.pushBytes(ctx, repo, ArtifactTypeDSSE, data, what)
	if err != nil {
		return "", err
	}
	empty.Data = nil
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       empty,
		Layers:       []ocispec.Descriptor{layer},
		Subject:      &subject,
		Annotations:  annotations,
	}
	desc, _, err := s.pushManifest(ctx, repo, m, what)
	return desc.Digest.String(), err
}

// Attach attaches a to the version an image's reference (its number,
// semver tag or manifest digest) names, as a referrer of its manifest (the
// OCI 1.1 referrers API, or the sha256-<hex> tag on a registry without
// it), and returns the referrer's ref (oci://…@sha256:…). Attaching the
// same envelope again changes nothing.
func (s *Store) Attach(ctx context.Context, image, reference string, a Attestation) (string, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return "", err
	}
	if err := a.validate("attestation"); err != nil {
		return "", err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return "", err
	}
	at := fmt.Sprintf("%s:%s in %s", image, reference, s.url(name))
	mdesc, _, err := s.fetchManifest(ctx, repo, reference, at)
	if err != nil {
		return "", err
	}
	d, err := s.attach(ctx, repo, mdesc, a.ArtifactType, a.annotations(), a.Envelope, a.ArtifactType+" attestation of "+at)
	if err != nil {
		return "", err
	}
	return s.url(name) + "@" + d, nil
}

// Attestation returns the DSSE envelope of the newest referrer of
// artifactType attached to the version an image's reference names, and
// the referrer's ref. ENOTFOUND when the version is not in the registry or
// has no such referrer. The envelope's signature is the caller's to
// check (sign.VerifySBOMWith).
func (s *Store) Attestation(ctx context.Context, image, reference, artifactType string) ([]byte, string, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return nil, "", err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, "", err
	}
	at := fmt.Sprintf("%s:%s in %s", image, reference, s.url(name))
	mdesc, _, err := s.fetchManifest(ctx, repo, reference, at)
	if err != nil {
		return nil, "", err
	}
	env, d, err := s.referrerWithDigest(ctx, repo, mdesc, artifactType, artifactType+" attestation of "+at)
	if err != nil {
		return nil, "", err
	}
	if env == nil {
		return nil, "", kiln.Errorf(kiln.ENOTFOUND, "%s has no referrer of type %s (nor one in its sha256-… tag); push the version again with `kiln artifact push`", at, artifactType)
	}
	return env, s.url(name) + "@" + d, nil
}

// tag points tag at the manifest unless it already names another one.
func (s *Store) tag(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, b []byte, tag, name string) error {
	old, err := repo.Manifests().Resolve(ctx, tag)
	switch {
	case err == nil && old.Digest == desc.Digest:
		return nil
	case err == nil:
		return kiln.Errorf(kiln.ECONFLICT, "tag %s:%s in %s already names %s, not %s; kiln never moves a version's tag: another kiln (another database) may push to this repository; give each its own oci:// repository", name, tag, s.url(name), old.Digest, desc.Digest)
	case !errors.Is(err, errdef.ErrNotFound):
		return s.fail(err, "look up tag %s in %s", tag, s.url(name))
	}
	if err := repo.Manifests().PushReference(ctx, desc, bytes.NewReader(b), tag); err != nil {
		return s.fail(err, "tag %s as %s:%s in %s", desc.Digest, name, tag, s.url(name))
	}
	return nil
}

// PullVersion reads a version's manifest, config and provenance envelope
// by reference: its number, its semver tag or a manifest digest. Its
// layers are not read: OpenLayer or Fetch stream them with verification.
// A manifest that is not an OCI image manifest, or an image without
// kiln's labels, is refused. Envelope is nil when the version has no
// provenance attached; callers that launch must refuse it.
func (s *Store) PullVersion(ctx context.Context, image, reference string) (*Pulled, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return nil, err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, err
	}
	at := fmt.Sprintf("%s:%s in %s", image, reference, s.url(name))
	if d, ok := isDigest(reference); ok {
		at = fmt.Sprintf("%s@%s in %s", image, d, s.url(name))
	}
	mdesc, man, err := s.fetchManifest(ctx, repo, reference, at)
	if err != nil {
		return nil, err
	}
	var cfg ocispec.Image
	if man.Config.MediaType != ocispec.MediaTypeImageConfig {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has a config of media type %q, not %s; it is not an image kiln pushed", at, man.Config.MediaType, ocispec.MediaTypeImageConfig)
	}
	if err := s.fetchJSON(ctx, repo, man.Config, &cfg, "config of "+at); err != nil {
		return nil, err
	}
	labels := cfg.Config.Labels
	if labels[LabelImage] != image {
		return nil, kiln.Errorf(kiln.EINVALID, "%s is not a version of %s: its config's %s label is %q; kiln pulls only versions it pushed", at, image, LabelImage, labels[LabelImage])
	}
	n, err := strconv.Atoi(labels[LabelVersion])
	if err != nil || n < 1 {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no valid %s label (%q); kiln pulls only versions it pushed", at, LabelVersion, labels[LabelVersion])
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has %d layers but its config lists %d diff_ids; the image is malformed; push it again", at, len(man.Layers), len(cfg.RootFS.DiffIDs))
	}
	p := &Pulled{Digest: mdesc.Digest.String(), Ref: s.url(name) + "@" + mdesc.Digest.String()}
	p.Image, p.Number = image, n
	p.Architecture = cfg.Architecture
	if cfg.Created != nil {
		p.Created = *cfg.Created
	}
	if tv := labels[ocispec.AnnotationVersion]; tv != labels[LabelVersion] {
		p.SemVer = tv
	}
	p.Release = map[string]string{}
	for k, v := range labels {
		if rk, ok := strings.CutPrefix(k, LabelReleasePrefix); ok && rk != "" {
			p.Release[rk] = v
		}
	}
	for i, l := range man.Layers {
		switch l.MediaType {
		case MediaTypeLayer, MediaTypeLayerGzip, MediaTypeLayerZstd:
		default:
			return nil, kiln.Errorf(kiln.EINVALID, "%s: layer %d (%s) has media type %q; kiln reads %s, %s and %s", at, i, l.Digest, l.MediaType, MediaTypeLayer, MediaTypeLayerGzip, MediaTypeLayerZstd)
		}
		ly := Layer{MediaType: l.MediaType, Digest: l.Digest.String(), Size: l.Size}
		if d := cfg.RootFS.DiffIDs[i].String(); d != ly.Digest {
			ly.DiffID = d
		}
		p.Layers = append(p.Layers, ly)
	}
	env, d, err := s.referrerWithDigest(ctx, repo, mdesc, ArtifactTypeDSSE, "provenance of "+at)
	if err != nil {
		return nil, err
	}
	p.Envelope = env
	if env != nil {
		p.Provenance = s.url(name) + "@" + d
	}
	return p, nil
}

func isDigest(ref string) (string, bool) {
	if kiln.ValidateDigest("", ref) == nil {
		return ref, true
	}
	return "", false
}

// fetchManifest resolves reference to an OCI image manifest, checking
// the digest of the bytes it reads.
func (s *Store) fetchManifest(ctx context.Context, repo *remote.Repository, reference, at string) (ocispec.Descriptor, *ocispec.Manifest, error) {
	desc, rc, err := repo.Manifests().FetchReference(ctx, reference)
	if errors.Is(err, errdef.ErrNotFound) {
		return desc, nil, kiln.Errorf(kiln.ENOTFOUND, "%s does not exist in the registry; check the image and version, or push the version from the machine that built it", at)
	}
	if err != nil {
		return desc, nil, s.fail(err, "read the manifest of %s", at)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxMetadata+1))
	if err != nil {
		return desc, nil, s.fail(err, "read the manifest of %s", at)
	}
	if len(b) > maxMetadata {
		return desc, nil, kiln.Errorf(kiln.EINVALID, "the manifest of %s is larger than %d bytes; it is not one kiln pushed", at, maxMetadata)
	}
	if got := digest.FromBytes(b); got != desc.Digest {
		return desc, nil, kiln.Errorf(kiln.EINTERNAL, "the manifest of %s is corrupted: the registry says %s, its content hashes to %s; push the version again", at, desc.Digest, got)
	}
	if desc.MediaType != ocispec.MediaTypeImageManifest {
		return desc, nil, kiln.Errorf(kiln.EINVALID, "%s is a %s, not an OCI image manifest (%s); kiln reads only the OCI images it pushes: push the version with kiln, or convert it (skopeo copy --format oci)", at, desc.MediaType, ocispec.MediaTypeImageManifest)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return desc, nil, kiln.Errorf(kiln.EINVALID, "the manifest of %s is not valid JSON: %v", at, err)
	}
	if m.MediaType != "" && m.MediaType != ocispec.MediaTypeImageManifest {
		return desc, nil, kiln.Errorf(kiln.EINVALID, "the manifest of %s says it is a %s, not an OCI image manifest", at, m.MediaType)
	}
	return desc, &m, nil
}

// fetchBlob reads a small blob, checking its digest and size.
func (s *Store) fetchBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, what string) ([]byte, error) {
	if desc.Size > maxMetadata {
		return nil, kiln.Errorf(kiln.EINVALID, "%s is %d bytes, larger than kiln reads (%d)", what, desc.Size, maxMetadata)
	}
	rc, err := s.openBlob(ctx, repo, desc, what)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, s.fail(err, "read %s", what)
	}
	return b, nil
}

func (s *Store) fetchJSON(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, v any, what string) error {
	b, err := s.fetchBlob(ctx, repo, desc, what)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return kiln.Errorf(kiln.EINVALID, "%s is not valid JSON: %v", what, err)
	}
	return nil
}

// openBlob opens a blob of repo with digest and size verification.
func (s *Store) openBlob(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, what string) (io.ReadCloser, error) {
	rc, err := repo.Blobs().Fetch(ctx, desc)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "%s is missing from the registry: it was deleted, or the push that made the version did not finish; push the version again from a machine that has it", what)
	}
	if err != nil {
		return nil, s.fail(err, "read %s", what)
	}
	return newVerifier(ctx, rc, desc.Digest.String(), desc.Size, what), nil
}

// referrerWithDigest returns the content of the newest artifact of
// artifactType attached to subject (its one layer), or nil when there is
// none, with the digest of the artifact's manifest. Every artifact kiln
// attaches has one DSSE envelope layer.
func (s *Store) referrerWithDigest(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, artifactType, what string) ([]byte, string, error) {
	descs, err := s.referrers(ctx, repo, subject, artifactType, what)
	if err != nil || len(descs) == 0 {
		return nil, "", err
	}
	// The referrers list has no defined order; kiln attaches one envelope
	// of a type per version, and takes the last listed if there are more.
	d := descs[len(descs)-1]
	_, m, err := s.fetchManifest(ctx, repo, d.Digest.String(), what)
	if err != nil {
		return nil, "", err
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != ArtifactTypeDSSE {
		return nil, "", kiln.Errorf(kiln.EINVALID, "%s (%s) does not have one %s layer; delete it and attach it again", what, d.Digest, ArtifactTypeDSSE)
	}
	b, err := s.fetchBlob(ctx, repo, m.Layers[0], what)
	return b, d.Digest.String(), err
}

func (s *Store) referrers(ctx context.Context, repo *remote.Repository, subject ocispec.Descriptor, artifactType, what string) ([]ocispec.Descriptor, error) {
	var out []ocispec.Descriptor
	err := repo.Referrers(ctx, subject, artifactType, func(rs []ocispec.Descriptor) error {
		out = append(out, rs...)
		return nil
	})
	if err != nil {
		return nil, s.fail(err, "list the referrers of %s", what)
	}
	return out, nil
}

// OpenLayer streams one layer of a pulled version, checking its digest
// and size as it is read (at EOF, or at Close; see kiln.ArtifactStore).
func (s *Store) OpenLayer(ctx context.Context, image string, l Layer) (io.ReadCloser, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return nil, err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, err
	}
	return s.openBlob(ctx, repo, l.descriptor(), fmt.Sprintf("layer %s of %s in %s", l.Digest, image, s.url(name)))
}

// Fetch pulls a version and copies the layers dst lacks into it, each
// verified while it streams: a layer whose content does not match its
// digest is not kept, and Fetch fails.
func (s *Store) Fetch(ctx context.Context, image, reference string, dst kiln.ArtifactStore) (*Pulled, error) {
	p, err := s.PullVersion(ctx, image, reference)
	if err != nil {
		return nil, err
	}
	for _, l := range p.Layers {
		if _, err := dst.Stat(ctx, l.Digest); err == nil {
			continue
		} else if kiln.ErrorCode(err) != kiln.ENOTFOUND {
			return nil, err
		}
		rc, err := s.OpenLayer(ctx, image, l)
		if err != nil {
			return nil, err
		}
		a, err := dst.Put(ctx, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		if a.Digest != l.Digest { // the verifier fails first; belt and braces
			_ = dst.Delete(ctx, a.Digest)
			return nil, kiln.Errorf(kiln.EINTERNAL, "layer %s of %s arrived as %s", l.Digest, p.Ref, a.Digest)
		}
	}
	return p, nil
}

// DeleteVersion deletes a version's manifest by digest, with its
// referrers (provenance) first; the registry drops the tags that named it.
// The layers stay until the registry's garbage collection finds nothing
// references them. Deleting a missing version is not an error.
func (s *Store) DeleteVersion(ctx context.Context, image, manifestDigest string) error {
	if err := kiln.ValidateImageName(image); err != nil {
		return err
	}
	if err := kiln.ValidateDigest("digest", manifestDigest); err != nil {
		return err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return err
	}
	at := fmt.Sprintf("%s@%s in %s", image, manifestDigest, s.url(name))
	desc, err := repo.Manifests().Resolve(ctx, manifestDigest)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil
	}
	if err != nil {
		return s.fail(err, "look up %s", at)
	}
	refs, err := s.referrers(ctx, repo, desc, "", at)
	if err != nil {
		return err
	}
	for _, r := range refs {
		if err := repo.Manifests().Delete(ctx, r); err != nil && !errors.Is(err, errdef.ErrNotFound) {
			return s.fail(err, "delete referrer %s of %s", r.Digest, at)
		}
	}
	if err := repo.Manifests().Delete(ctx, desc); err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return s.fail(err, "delete %s", at)
	}
	return nil
}

// Blobs returns the digests of everything a version holds on to in the
// registry: its manifest, config and layers, and its referrers' manifests
// and blobs. Garbage collection keeps the union over the live versions.
func (s *Store) Blobs(ctx context.Context, image, reference string) ([]string, error) {
	if err := kiln.ValidateImageName(image); err != nil {
		return nil, err
	}
	name := s.loc.image(image)
	repo, err := s.repo(ctx, name)
	if err != nil {
		return nil, err
	}
	at := fmt.Sprintf("%s:%s in %s", image, reference, s.url(name))
	set := map[string]bool{}
	add := func(desc ocispec.Descriptor, m *ocispec.Manifest) {
		set[desc.Digest.String()] = true
		set[m.Config.Digest.String()] = true
		for _, l := range m.Layers {
			set[l.Digest.String()] = true
		}
	}
	desc, m, err := s.fetchManifest(ctx, repo, reference, at)
	if err != nil {
		return nil, err
	}
	add(desc, m)
	refs, err := s.referrers(ctx, repo, desc, "", at)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		rdesc, rm, err := s.fetchManifest(ctx, repo, r.Digest.String(), "referrer "+r.Digest.String()+" of "+at)
		if err != nil {
			return nil, err
		}
		add(rdesc, rm)
	}
	return slices.Sorted(maps.Keys(set)), nil
}

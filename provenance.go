package kiln

import (
	"strings"
	"time"
)

// Provenance is the immutable record of how a version was made. It is
// written once with the version and never changed.
type Provenance struct {
	Method Method `json:"method"`
	// Parent is the previous version of the same image a reheat started from.
	Parent *VersionRef `json:"parent,omitempty"`
	// Base is the version of another image line this one was built on.
	Base     *VersionRef `json:"base,omitempty"`
	Sources  []Source    `json:"sources"`
	Packages []Package   `json:"packages"`
	Artifact *Artifact   `json:"artifact,omitempty"`
	// Artifacts are further artifacts built from Artifact, one per format
	// the image line declares beyond the root filesystem (bootable disk
	// images: qcow2, raw), each with its Format. Signed with the rest.
	Artifacts []Artifact `json:"artifacts,omitempty"`
	// BuiltBy says who or what made the version: a user, a kiln worker.
	// For an external version it is what the caller claimed.
	BuiltBy string `json:"built_by"`
	// RecordedBy is set for a version kiln did not build itself: it was
	// registered through the API or `kiln version create` by this actor
	// (a token, a local user), and its sources, packages and BuiltBy are
	// that actor's claims. kiln's signature on such a version means
	// "recorded by kiln", not "built by kiln". Empty for kiln's builds.
	RecordedBy string    `json:"recorded_by,omitempty"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// SourceDateEpoch is the SOURCE_DATE_EPOCH the build ran with (Unix
	// seconds; every step saw it and no file in the artifact is newer),
	// and SourceDateEpochFrom says where it came from ("git commit …",
	// "definition digest …", "setting"). Zero for versions built before
	// reproducible bakes and for external ones: `kiln version rebuild
	// --check` needs it.
	SourceDateEpoch     int64  `json:"source_date_epoch,omitempty"`
	SourceDateEpochFrom string `json:"source_date_epoch_from,omitempty"`
}

// External reports whether the version was registered rather than built
// by kiln (see RecordedBy).
func (p *Provenance) External() bool { return p.RecordedBy != "" }

// ContentDigests are the blobs a version's content is read by: a layered
// artifact's layers and its layer list (or the one tar), and its disk
// images. Another machine launches the version from these alone.
func (p *Provenance) ContentDigests() []string {
	var ds []string
	if p.Artifact != nil {
		for _, l := range p.Artifact.Layers {
			ds = append(ds, l.Digest)
		}
		ds = append(ds, p.Artifact.Digest)
	}
	for _, d := range p.Artifacts {
		ds = append(ds, d.Digest)
	}
	return ds
}

// Method is how a version was built.
type Method string

const (
	// MethodFresh bakes from the original sources every time.
	MethodFresh Method = "fresh"
	// MethodReheat builds on top of the previous version of the same image.
	MethodReheat Method = "reheat"
	// MethodExternal records an image another tool built (a Packer AMI):
	// kiln keeps its record and an external reference to its artifact, not
	// its content.
	MethodExternal Method = "external"
)

// ParseMethod parses a build method name.
func ParseMethod(field, s string) (Method, error) {
	switch Method(s) {
	case MethodFresh, MethodReheat, MethodExternal:
		return Method(s), nil
	}
	return "", FieldErrorf(EINVALID, field, "unknown build method %q; use fresh, reheat or external", s)
}

// SourceKind says what role an input played in a build.
type SourceKind string

const (
	SourceOrigin     SourceKind = "origin"             // the image started from: a Debian suite, an upstream artifact
	SourceDefinition SourceKind = "builder-definition" // the image definition file
	SourceConfig     SourceKind = "config-code"        // provisioning scripts, files, configuration code
	SourceOther      SourceKind = "other"
)

// Source is one input of a build.
type Source struct {
	Kind SourceKind `json:"kind"`
	// Ref locates the input: a path, URL, git commit or suite@mirror.
	Ref string `json:"ref"`
	// Digest is "sha256:<64 hex>" of the input's content, when it has one.
	Digest string `json:"digest,omitempty"`
}

// ParseSource parses "KIND=REF@sha256:HEX" (the digest part is optional).
func ParseSource(field, s string) (Source, error) {
	kind, rest, ok := strings.Cut(s, "=")
	if !ok {
		return Source{}, FieldErrorf(EINVALID, field, "source %q has no '='; write KIND=REF@sha256:HEX with KIND one of origin, builder-definition, config-code, other", s)
	}
	src := Source{Kind: SourceKind(kind), Ref: rest}
	if i := strings.LastIndex(rest, "@sha256:"); i >= 0 {
		src.Ref, src.Digest = rest[:i], rest[i+1:]
	}
	return src, src.Validate(field)
}

// Validate checks a source's kind, reference and digest.
func (s Source) Validate(field string) error {
	switch s.Kind {
	case SourceOrigin, SourceDefinition, SourceConfig, SourceOther:
	default:
		return FieldErrorf(EINVALID, field, "unknown source kind %q; use origin, builder-definition, config-code or other", s.Kind)
	}
	if s.Ref == "" {
		return FieldErrorf(EINVALID, field, "source of kind %s has an empty reference; give a path, URL or git commit", s.Kind)
	}
	if len(s.Ref) > 4096 {
		return FieldErrorf(EINVALID, field, "source reference is %d bytes; the limit is 4096", len(s.Ref))
	}
	if s.Digest != "" {
		return ValidateDigest(field, s.Digest)
	}
	return nil
}

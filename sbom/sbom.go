package sbom

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	kiln "github.com/kiln-project/kiln"
)

// Format is an SBOM format kiln writes.
type Format string

const (
	// FormatSPDX is SPDX 2.3 JSON.
	FormatSPDX Format = "spdx"
	// FormatCycloneDX is CycloneDX 1.6 JSON.
	FormatCycloneDX Format = "cyclonedx"
)

// Formats lists the formats in the order kiln writes them.
var Formats = []Format{FormatSPDX, FormatCycloneDX}

// ParseFormat parses a format name ("spdx", "cyclonedx"; "cdx" too).
func ParseFormat(field, s string) (Format, error) {
	switch strings.ToLower(s) {
	case "spdx":
		return FormatSPDX, nil
	case "cyclonedx", "cdx":
		return FormatCycloneDX, nil
	}
	return "", kiln.FieldErrorf(kiln.EINVALID, field, "unknown SBOM format %q; use spdx or cyclonedx", s)
}

// MediaType is the document's media type.
func (f Format) MediaType() string {
	if f == FormatCycloneDX {
		return "application/vnd.cyclonedx+json"
	}
	return "application/spdx+json"
}

// Options are what the version does not say.
type Options struct {
	// Licenses maps a binary package name to its licence as an SPDX
	// expression (ReadLicenses makes it); packages not in it are
	// NOASSERTION.
	Licenses map[string]string
	// Distro is the purl distro qualifier ("debian-12"); empty derives it
	// from the version's origin source (see Distro).
	Distro string
}

// Stats counts what a document holds.
type Stats struct {
	Packages       int `json:"packages"`
	SourcePackages int `json:"source_packages"`
	Inputs         int `json:"inputs"`
	// Licensed packages have a licence from their copyright file;
	// NoAssertion ones have none (no machine-readable copyright file).
	Licensed    int `json:"licensed"`
	NoAssertion int `json:"noassertion"`
}

// Generate writes v's SBOM in format f. EINVALID for a version without a
// name or an unknown format.
func Generate(v *kiln.Version, f Format, opts Options) ([]byte, Stats, error) {
	if v == nil || v.Image == "" || v.Number < 1 {
		return nil, Stats{}, kiln.Errorf(kiln.EINVALID, "no version given to describe")
	}
	m := newModel(v, opts)
	var doc any
	switch f {
	case FormatSPDX:
		doc = m.spdx()
	case FormatCycloneDX:
		doc = m.cyclonedx()
	default:
		return nil, Stats{}, kiln.FieldErrorf(kiln.EINVALID, "format", "unknown SBOM format %q; use spdx or cyclonedx", f)
	}
	b, err := encode(doc)
	if err != nil {
		return nil, Stats{}, err
	}
	// The document's id is derived from its content with the id left
	// empty, then filled in: same content, same id, same bytes.
	id := docID(f, v, b)
	switch d := doc.(type) {
	case *spdxDocument:
		d.DocumentNamespace = spdxNamespace + v.Ref().String() + "-" + id
	case *cdxDocument:
		d.SerialNumber = "urn:uuid:" + id
	}
	b, err = encode(doc)
	return b, m.stats, err
}

// kilnNamespace is the UUID namespace of kiln's SBOM ids (a version 5 UUID
// of "https://kiln.dev/sbom" in the URL namespace).
var kilnNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://kiln.dev/sbom"))

// spdxNamespace prefixes SPDX document namespaces; an identifier, not a
// page that must resolve.
const spdxNamespace = "https://kiln.dev/spdx/"

// docID is a version 5 UUID in kiln's namespace of the format, the
// version's name and the sha256 of the document as written with an empty
// id: unique per document content, stable across runs.
func docID(f Format, v *kiln.Version, body []byte) string {
	sum := sha256.Sum256(body)
	return uuid.NewSHA1(kilnNamespace, fmt.Appendf(nil, "%s\n%s\n%x", f, v.Ref(), sum)).String()
}

func encode(doc any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode SBOM: %w", err)
	}
	return buf.Bytes(), nil
}

// model is what both formats say, computed once.
type model struct {
	v       *kiln.Version
	created string
	distro  string
	digest  string // artifact hex digest, "" when none
	pkgs    []pkg
	sources []srcPkg // distinct source packages, sorted
	inputs  []kiln.Source
	built   []builtOn
	stats   Stats
	// licenceRefs are the LicenseRef- ids the licences use, sorted.
	licenceRefs []string
}

type pkg struct {
	kiln.Package
	srcName, srcVersion string
	licence             string // SPDX expression, "" for NOASSERTION
	purl                string
}

type srcPkg struct {
	name, version string
	purl          string
}

type builtOn struct {
	ref  kiln.VersionRef
	kind string // "base" or "parent"
}

func newModel(v *kiln.Version, opts Options) *model {
	m := &model{v: v, distro: opts.Distro}
	if m.distro == "" {
		m.distro = Distro(v)
	}
	m.created = v.CreatedAt.UTC().Truncate(time.Second).Format(time.RFC3339)
	if a := v.Provenance.Artifact; a != nil && a.Digest != "" {
		m.digest = strings.TrimPrefix(a.Digest, "sha256:")
	}
	refs := map[string]bool{}
	seenSrc := map[[2]string]bool{}
	for _, p := range v.Provenance.Packages {
		k := pkg{Package: p, srcName: p.Source, srcVersion: p.SourceVersion}
		// dpkg leaves Source out when it equals the package name, and
		// the source version out when it equals the binary's.
		if k.srcName == "" {
			k.srcName = p.Name
		}
		if k.srcVersion == "" {
			k.srcVersion = p.Version
		}
		k.purl = purl(p.Name, p.Version, p.Architecture, m.distro)
		if l := opts.Licenses[p.Name]; l != "" {
			k.licence = l
			m.stats.Licensed++
			for _, r := range licenceRefs(l) {
				refs[r] = true
			}
		} else {
			m.stats.NoAssertion++
		}
		m.pkgs = append(m.pkgs, k)
		sk := [2]string{k.srcName, k.srcVersion}
		if !seenSrc[sk] {
			seenSrc[sk] = true
			m.sources = append(m.sources, srcPkg{name: k.srcName, version: k.srcVersion, purl: purl(k.srcName, k.srcVersion, "source", m.distro)})
		}
	}
	sort.Slice(m.pkgs, func(i, j int) bool {
		if m.pkgs[i].Name != m.pkgs[j].Name {
			return m.pkgs[i].Name < m.pkgs[j].Name
		}
		return m.pkgs[i].Architecture < m.pkgs[j].Architecture
	})
	sort.Slice(m.sources, func(i, j int) bool {
		if m.sources[i].name != m.sources[j].name {
			return m.sources[i].name < m.sources[j].name
		}
		return m.sources[i].version < m.sources[j].version
	})
	m.inputs = slices.Clone(v.Provenance.Sources)
	if b := v.Provenance.Base; b != nil {
		m.built = append(m.built, builtOn{ref: *b, kind: "base"})
	}
	if p := v.Provenance.Parent; p != nil {
		m.built = append(m.built, builtOn{ref: *p, kind: "parent"})
	}
	for r := range refs {
		m.licenceRefs = append(m.licenceRefs, r)
	}
	sort.Strings(m.licenceRefs)
	m.stats.Packages, m.stats.SourcePackages, m.stats.Inputs = len(m.pkgs), len(m.sources), len(m.inputs)
	return m
}

// debianReleases maps Debian codenames to release numbers, for the purl
// distro qualifier.
var debianReleases = map[string]string{
	"stretch": "9", "buster": "10", "bullseye": "11", "bookworm": "12",
	"trixie": "13", "forky": "14", "duke": "15",
}

// Distro derives the purl distro qualifier from v's origin source
// ("bookworm@http://deb.debian.org/debian" gives "debian-12"; "sid" and
// unknown suites give "debian-SUITE"). A version built on another has the
// base's name as its origin and no suite: Distro returns "" for it, and
// the caller passes the base's (DistroOf walks the chain).
func Distro(v *kiln.Version) string {
	for _, s := range v.Provenance.Sources {
		if s.Kind != kiln.SourceOrigin {
			continue
		}
		suite, _, ok := strings.Cut(s.Ref, "@")
		if !ok || suite == "" || strings.Contains(suite, "/") {
			continue
		}
		suite = strings.ToLower(suite)
		if n, ok := debianReleases[suite]; ok {
			return "debian-" + n
		}
		return "debian-" + suite
	}
	return ""
}

// purl returns "pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO",
// percent-encoding name and version as the purl spec asks (an epoch's
// ':' and a '+' are encoded). Qualifiers are sorted by key; empty ones are
// left out.
func purl(name, version, arch, distro string) string {
	var b strings.Builder
	b.WriteString("pkg:deb/debian/")
	b.WriteString(escape(name))
	if version != "" {
		b.WriteByte('@')
		b.WriteString(escape(version))
	}
	sep := byte('?')
	for _, q := range [][2]string{{"arch", arch}, {"distro", distro}} {
		if q[1] == "" {
			continue
		}
		b.WriteByte(sep)
		b.WriteString(q[0] + "=" + escape(q[1]))
		sep = '&'
	}
	return b.String()
}

// escape percent-encodes all but the unreserved characters.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// VersionFinder finds a version; kiln.Registry is one.
type VersionFinder interface {
	FindVersion(ctx context.Context, ref kiln.VersionRef) (*kiln.Version, error)
}

// DistroOf is the purl distro of v: its own origin's (Distro), or that of
// the version it was built on, followed up to 16 levels ("" when none
// says, or a version on the way cannot be read).
func DistroOf(ctx context.Context, reg VersionFinder, v *kiln.Version) string {
	for range 16 {
		if d := Distro(v); d != "" {
			return d
		}
		next := v.Provenance.Base
		if next == nil {
			next = v.Provenance.Parent
		}
		if next == nil {
			return ""
		}
		b, err := reg.FindVersion(ctx, *next)
		if err != nil {
			return ""
		}
		v = b
	}
	return ""
}

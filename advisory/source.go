package advisory

import (
	"fmt"
	"github.com/kiln-project/kiln/debian"
	"strings"
)

// SourceRef names the source package a binary package was built from.
type SourceRef struct {
	Name string `json:"name"`
	// Version is the source version when it differs from the binary's
	// (dpkg writes "Source: openssl (3.0.11-1~deb12u2)"); empty otherwise.
	Version string `json:"version,omitempty"`
}

// Sources maps binary package names (libssl3) to their source package
// (openssl). Advisories name source packages; manifests list binaries.
type Sources map[string]SourceRef

// ParseDpkgSource parses the Source field of a dpkg status entry:
// "openssl" or "openssl (3.0.11-1~deb12u2)". dpkg leaves the field out when
// the source has the binary's name and version; pass "" and the binary's
// name then.
func ParseDpkgSource(binary, field string) (SourceRef, error) {
	field = strings.TrimSpace(field)
	if field == "" {
		return SourceRef{Name: binary}, nil
	}
	name, rest, hasVersion := strings.Cut(field, " ")
	ref := SourceRef{Name: name}
	if hasVersion {
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, "(") || !strings.HasSuffix(rest, ")") {
			return SourceRef{}, fmt.Errorf("source field %q of %s: want NAME or NAME (VERSION)", field, binary)
		}
		ref.Version = strings.TrimSpace(rest[1 : len(rest)-1])
		if _, err := debian.ParseVersion(ref.Version); err != nil {
			return SourceRef{}, fmt.Errorf("source field %q of %s: %w", field, binary, err)
		}
	}
	return ref, nil
}

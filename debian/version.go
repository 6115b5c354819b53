package debian

import (
	"fmt"
	"strings"

	"pault.ag/go/debian/version"
)

// Version is a parsed Debian package version ([epoch:]upstream[-revision]).
type Version struct{ v version.Version }

// ParseVersion parses a Debian version with dpkg's rules. On top of
// pault.ag/go/debian/version it rejects what dpkg rejects and that library
// lets through: an empty upstream version ("-1") and an empty revision
// ("1.0-").
func ParseVersion(s string) (Version, error) {
	v, err := version.Parse(s)
	if err != nil {
		return Version{}, fmt.Errorf("%q is not a Debian version: %w", s, err)
	}
	t := strings.TrimSpace(s)
	if v.Version == "" {
		return Version{}, fmt.Errorf("%q is not a Debian version: version number is empty", s)
	}
	if strings.HasSuffix(t, "-") {
		return Version{}, fmt.Errorf("%q is not a Debian version: revision number is empty", s)
	}
	return Version{v: v}, nil
}

// Compare returns -1, 0 or 1 as a sorts before, equal to or after b in
// dpkg's order.
func (a Version) Compare(b Version) int {
	switch c := version.Compare(a.v, b.v); {
	case c < 0:
		return -1
	case c > 0:
		return 1
	}
	return 0
}

func (a Version) String() string { return a.v.String() }

// CompareVersions parses and compares two Debian versions as
// `dpkg --compare-versions` does.
func CompareVersions(a, b string) (int, error) {
	va, err := ParseVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

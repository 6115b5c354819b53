package advisory

import (
	"strings"

	"github.com/kiln-project/kiln"
)

// codenames maps Debian release numbers to codenames.
var codenames = map[string]string{
	"4": "etch", "5": "lenny", "6": "squeeze", "7": "wheezy", "8": "jessie",
	"9": "stretch", "10": "buster", "11": "bullseye", "12": "bookworm",
	"13": "trixie", "14": "forky", "15": "duke",
}

// numbers maps codenames back to release numbers.
var numbers = func() map[string]string {
	m := make(map[string]string, len(codenames))
	for n, c := range codenames {
		m[c] = n
	}
	return m
}()

// Release returns the canonical name kiln uses for a Debian release: its
// codename. It accepts "bookworm", "12", "Debian:12", "debian-12",
// "unstable" and "sid" (case-insensitive). A number kiln does not know
// (a future release) is returned as is; so is an unknown codename.
func Release(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range []string{"debian:", "debian-", "debian"} {
		if rest, ok := strings.CutPrefix(s, p); ok && rest != "" {
			s = rest
			break
		}
	}
	if c, ok := codenames[s]; ok {
		return c
	}
	if major, _, ok := strings.Cut(s, "."); ok { // "12.5" is a point release of 12
		if c, ok := codenames[major]; ok {
			return c
		}
	}
	if s == "unstable" {
		return "sid"
	}
	return s
}

// ecosystemRelease splits an OSV ecosystem. ok is false for ecosystems that
// are not Debian; release is "" for plain "Debian".
func ecosystemRelease(eco string) (release string, ok bool) {
	if eco == "Debian" {
		return "", true
	}
	rest, found := strings.CutPrefix(eco, "Debian:")
	if !found || rest == "" {
		return "", false
	}
	return Release(rest), true
}

// releaseEcosystem is the OSV ecosystem of a release codename.
func releaseEcosystem(codename string) string {
	if n, ok := numbers[codename]; ok {
		return "Debian:" + n
	}
	return "Debian"
}

// ReleaseOfPackages returns the Debian release an image's installed
// packages say it is, from base-files, whose version starts with the
// release number ("12.4+deb12u5" is bookworm): the answer for an image
// whose origin names no suite (a tarball, a Packer import). It returns ""
// when base-files is missing or its number is not a release kiln knows
// (sid's base-files carries the next number, so sid reads as that
// release's testing, which is what its advisories track).
func ReleaseOfPackages(pkgs []kiln.Package) string {
	for _, p := range pkgs {
		if p.Name != "base-files" {
			continue
		}
		v := p.Version
		if _, after, ok := strings.Cut(v, ":"); ok {
			v = after
		}
		major, _, _ := strings.Cut(v, ".")
		major, _, _ = strings.Cut(major, "+")
		if c, ok := codenames[major]; ok {
			return c
		}
		return ""
	}
	return ""
}

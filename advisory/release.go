package advisory

import (
	"strings"
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

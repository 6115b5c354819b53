package advisory

import (
	"fmt"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
)

// Finding is what one advisory says about one installed package.
type Finding struct {
	Advisory string `json:"advisory"`
	// Package is the installed binary package.
	Package string `json:"package"`
	// Source is the source package the advisory names.
	Source string `json:"source"`
	// Installed is the version compared: the source version when the
	// manifest gives one, else the binary package's version.
	Installed string `json:"installed"`
	// Fixed is the first fixed version of the range that decided, if any.
	Fixed    string              `json:"fixed,omitempty"`
	Affected bool                `json:"affected"`
	Status   kiln.AffectedStatus `json:"status"`
	// State is Debian's triage of an affected finding; empty means
	// StateAffected (and is always so for a finding not affected).
	// Include says which states count.
	State    State  `json:"state,omitempty"`
	Severity string `json:"severity,omitempty"`
	// SeverityNVD is set when Severity is NVD's, not Debian's.
	SeverityNVD bool `json:"severity_nvd,omitempty"`
	// Reason says why, in words a person checks: "3.0.9-1 < fixed 3.0.11-1~deb12u2".
	Reason string `json:"reason"`
}

// entry is one AffectedPackage with its versions parsed.
type entry struct {
	adv                       *kiln.Advisory
	pkg                       kiln.AffectedPackage
	intro, fixed, last        debian.Version
	hasIntro, hasFix, hasLast bool
}

// Index is a set of advisories prepared for matching many manifests of one
// Debian release: versions are parsed once and entries are looked up by
// source package name. It is read-only after NewIndex and safe for
// concurrent use.
type Index struct {
	release  string
	bySource map[string][]entry
}

// NewIndex prepares advs for matching manifests of release ("bookworm",
// "12", "Debian:12"). Entries for other releases are dropped; entries
// without a release apply to every release. Withdrawn advisories are left
// out. A version that does not parse is an error naming the advisory and
// the entry.
func NewIndex(advs []*kiln.Advisory, release string) (*Index, error) {
	ix := &Index{release: Release(release), bySource: map[string][]entry{}}
	if ix.release == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "release", "no Debian release given; name the release the manifests are from, e.g. bookworm or 12")
	}
	for _, a := range advs {
		if !a.Withdrawn.IsZero() {
			continue
		}
		for i, p := range a.Packages {
			if p.Release != "" && p.Release != ix.release {
				continue
			}
			e := entry{adv: a, pkg: p}
			var err error
			field := func(f string) string { return fmt.Sprintf("%s: packages[%d].%s", a.ID, i, f) }
			if p.Introduced != "" && p.Introduced != "0" {
				if e.intro, err = debian.ParseVersion(p.Introduced); err != nil {
					return nil, kiln.FieldErrorf(kiln.EINVALID, field("introduced"), "%v", err)
				}
				e.hasIntro = true
			}
			if p.Fixed != "" {
				if e.fixed, err = debian.ParseVersion(p.Fixed); err != nil {
					return nil, kiln.FieldErrorf(kiln.EINVALID, field("fixed"), "%v", err)
				}
				e.hasFix = true
			}
			if p.LastAffected != "" {
				if e.last, err = debian.ParseVersion(p.LastAffected); err != nil {
					return nil, kiln.FieldErrorf(kiln.EINVALID, field("last_affected"), "%v", err)
				}
				e.hasLast = true
			}
			ix.bySource[p.Name] = append(ix.bySource[p.Name], e)
		}
	}
	return ix, nil
}

// Release is the canonical release the index matches.
func (ix *Index) Release() string { return ix.release }

// Match returns one Finding per installed package and advisory that names
// its source package in the index's release, affected or not, in the order
// of pkgs. A package's source is looked up in sources by binary name; a
// package missing there is taken to be its own source (true for openssl,
// not for libssl3: pass sources to catch those).
func (ix *Index) Match(pkgs []kiln.Package, sources Sources) []Finding {
	var out []Finding
	for _, p := range pkgs {
		src, ver := p.Name, p.Version
		if s, ok := sources[p.Name]; ok {
			if s.Name != "" {
				src = s.Name
			}
			if s.Version != "" {
				ver = s.Version
			}
		}
		entries := ix.bySource[src]
		if len(entries) == 0 {
			continue
		}
		installed, perr := debian.ParseVersion(ver)
		// Entries of one advisory are contiguous: decide per advisory.
		for i := 0; i < len(entries); {
			j := i + 1
			for j < len(entries) && entries[j].adv == entries[i].adv {
				j++
			}
			f := Finding{Advisory: entries[i].adv.ID, Package: p.Name, Source: src, Installed: ver}
			if perr != nil {
				f.Affected, f.Status = true, kiln.AffectedUndetermined
				f.Reason = fmt.Sprintf("installed version cannot be compared (%v); check it by hand", perr)
			} else {
				decide(&f, installed, entries[i:j], ix.release)
			}
			out = append(out, f)
			i = j
		}
	}
	return out
}

// decide sets f from the ranges of one advisory: affected when any range
// contains the installed version.
func decide(f *Finding, v debian.Version, es []entry, release string) {
	first := true
	for _, e := range es {
		affected, reason := e.contains(v, f.Installed, release)
		if affected || first {
			f.Affected, f.Reason = affected, reason
			f.Fixed, f.Status, f.Severity, f.SeverityNVD = e.pkg.Fixed, e.pkg.Status, e.pkg.Severity, e.pkg.SeverityNVD
			first = false
		}
		if affected {
			if st := stateOf(e.pkg); st != StateAffected {
				f.State = st
			}
			if note := triageNote(e.pkg, stateOf(e.pkg)); note != "" {
				f.Reason += "; " + note
			}
			return
		}
	}
}

// contains applies the matching rules to one range.
// Reasons are built by concatenation: this runs for every hit of every
// manifest, and fmt was a measurable share of it.
func (e *entry) contains(v debian.Version, raw, release string) (bool, string) {
	switch e.pkg.Status {
	case kiln.AffectedNotAffected:
		return false, e.pkg.Name + " in " + release + " was never affected"
	case kiln.AffectedUndetermined:
		return true, "the advisory has not determined whether " + e.pkg.Name + " in " + release + " is affected; treated as affected"
	}
	if e.hasIntro && v.Compare(e.intro) < 0 {
		return false, raw + " < introduced " + e.pkg.Introduced
	}
	switch {
	case e.hasFix && v.Compare(e.fixed) < 0:
		return true, raw + " < fixed " + e.pkg.Fixed
	case e.hasFix:
		return false, raw + " ≥ fixed " + e.pkg.Fixed
	case e.hasLast && v.Compare(e.last) <= 0:
		return true, raw + " ≤ last affected " + e.pkg.LastAffected + ", no fix yet"
	case e.hasLast:
		return false, raw + " > last affected " + e.pkg.LastAffected
	}
	return true, "no fix for " + e.pkg.Name + " in " + release + " yet"
}

// Match matches one advisory against one manifest; see Index.Match. For
// many advisories or manifests, build an Index once.
func Match(adv *kiln.Advisory, release string, pkgs []kiln.Package, sources Sources) ([]Finding, error) {
	ix, err := NewIndex([]*kiln.Advisory{adv}, release)
	if err != nil {
		return nil, err
	}
	return ix.Match(pkgs, sources), nil
}

// Affected keeps the findings that say affected, whatever Debian's triage
// says; Counted applies it.
func Affected(fs []Finding) []Finding {
	var out []Finding
	for _, f := range fs {
		if f.Affected {
			out = append(out, f)
		}
	}
	return out
}

package kiln

import (
	"context"
	"fmt"
	"time"
)

// AdvisorySource says where an advisory was read from.
type AdvisorySource string

const (
	AdvisoryOSV           AdvisorySource = "osv"            // an OSV JSON record (OSV.dev, Debian DSA/DLA, Freexian ELA)
	AdvisoryDebianTracker AdvisorySource = "debian-tracker" // the Debian security tracker's JSON export
	AdvisoryManual        AdvisorySource = "manual"         // written by a user, usually with image-level fixed-in versions
)

// AffectedStatus says what an advisory states about one package in one release.
type AffectedStatus string

const (
	// AffectedFixed: versions from Introduced up to (not including) Fixed
	// are affected; Fixed and later are not.
	AffectedFixed AffectedStatus = "fixed"
	// AffectedOpen: every version from Introduced on is affected, no fix is
	// published yet (or, with LastAffected, up to and including it).
	AffectedOpen AffectedStatus = "open"
	// AffectedNotAffected: the release never shipped a vulnerable version
	// (the tracker's fixed_version "0").
	AffectedNotAffected AffectedStatus = "not-affected"
	// AffectedUndetermined: the source has not decided yet; kiln treats the
	// package as affected so it is looked at.
	AffectedUndetermined AffectedStatus = "undetermined"
)

// Advisory is a security advisory. It is image-level when FixedIn names the
// first fixed version of each image line, package-level when Packages names
// the fixed versions of Debian source packages, or both.
type Advisory struct {
	// ID is the source's identifier: DSA-5000-1, DLA-3008-1, ELA-986-1, CVE-2024-2002.
	ID     string         `json:"id"`
	Source AdvisorySource `json:"source"`
	// Aliases are other ids of the same vulnerability (CVE ids of a DSA).
	Aliases []string `json:"aliases,omitempty"`
	// Related are ids of linked but distinct records (OSV "related").
	Related []string `json:"related,omitempty"`
	Summary string   `json:"summary,omitempty"`
	Details string   `json:"details,omitempty"`
	// URL points a person at the advisory's page, when the source gives one.
	URL       string    `json:"url,omitempty"`
	Published time.Time `json:"published,omitzero"`
	Modified  time.Time `json:"modified,omitzero"`
	// Withdrawn is set when the source retracted the advisory; a withdrawn
	// advisory matches nothing.
	Withdrawn time.Time `json:"withdrawn,omitzero"`
	// FixedIn lists, per image line, the first version that has the fix.
	// Earlier versions of those lines are exposed; lines not named are not.
	FixedIn  []VersionRef      `json:"fixed_in,omitempty"`
	Packages []AffectedPackage `json:"packages,omitempty"`
}

// AffectedPackage is one affected version range of one Debian source
// package in one release. An advisory with several ranges for the same
// package and release has one entry per range.
type AffectedPackage struct {
	// Ecosystem is the OSV ecosystem, "Debian:12"; plain "Debian" when the
	// source gives no release number.
	Ecosystem string `json:"ecosystem"`
	// Release is the Debian codename ("bookworm", "sid"); empty means the
	// entry applies to every release.
	Release string `json:"release,omitempty"`
	// Name is the source package name (openssl, not libssl3).
	Name string `json:"name"`
	// Introduced is the first affected version; empty means every version
	// before Fixed.
	Introduced string `json:"introduced,omitempty"`
	// Fixed is the first version with the fix; empty when there is none yet.
	Fixed string `json:"fixed,omitempty"`
	// LastAffected is the last affected version, for sources that state it
	// instead of a fix (OSV last_affected).
	LastAffected string         `json:"last_affected,omitempty"`
	Status       AffectedStatus `json:"status"`
	// Severity is the source's word for it: the tracker's urgency (low,
	// medium, high, unimportant, end-of-life…) or an OSV severity.
	Severity string `json:"severity,omitempty"`
	// SeverityNVD is set when Severity is NVD's, not yet reviewed by
	// Debian (the tracker's "high**"), and no release of the same CVE and
	// package has Debian's own urgency to use instead.
	SeverityNVD bool `json:"severity_nvd,omitempty"`
	// NoDSA is Debian's decision not to issue a DSA/DLA for this package in
	// this release: "ignored" (will not be fixed), "postponed" (fixed in a
	// later point release) or "no-dsa" (a minor issue); empty when Debian
	// made no such decision. Note is the tracker's text for it.
	NoDSA string `json:"no_dsa,omitempty"`
	Note  string `json:"note,omitempty"`
	// FixedLater names the first later release that has a fix, as
	// "RELEASE VERSION", when this release has none (status open).
	FixedLater string `json:"fixed_later,omitempty"`
}

// Validate checks what can be checked without knowing Debian version rules;
// the advisory package checks version syntax when it parses.
func (a *Advisory) Validate() error {
	if a.ID == "" {
		return FieldErrorf(EINVALID, "id", "advisory id is empty; give the source's id, e.g. DSA-5000-1 or CVE-2024-2002")
	}
	if len(a.ID) > 256 {
		return FieldErrorf(EINVALID, "id", "advisory id is %d bytes; the limit is 256", len(a.ID))
	}
	switch a.Source {
	case AdvisoryOSV, AdvisoryDebianTracker, AdvisoryManual:
	default:
		return FieldErrorf(EINVALID, "source", "unknown advisory source %q; use osv, debian-tracker or manual", a.Source)
	}
	if len(a.FixedIn) == 0 && len(a.Packages) == 0 {
		return FieldErrorf(EINVALID, "fixed_in", "advisory %s names neither fixed-in image versions nor affected packages; give at least one", a.ID)
	}
	seen := make(map[string]bool, len(a.FixedIn))
	for i, r := range a.FixedIn {
		field := fmt.Sprintf("fixed_in[%d]", i)
		if err := ValidateImageName(r.Image); err != nil {
			return FieldErrorf(EINVALID, field, "image %q is not a valid image name", r.Image)
		}
		if r.Number < 1 {
			return FieldErrorf(EINVALID, field, "version number of %s is %d; it must be ≥ 1", r.Image, r.Number)
		}
		if seen[r.Image] {
			return FieldErrorf(EINVALID, field, "image %s is named twice; give one first fixed version per image", r.Image)
		}
		seen[r.Image] = true
	}
	for i, p := range a.Packages {
		field := fmt.Sprintf("packages[%d]", i)
		if p.Name == "" {
			return FieldErrorf(EINVALID, field+".name", "affected package has no name")
		}
		switch p.Status {
		case AffectedFixed:
			if p.Fixed == "" {
				return FieldErrorf(EINVALID, field+".fixed", "status fixed needs a fixed version")
			}
		case AffectedOpen, AffectedNotAffected, AffectedUndetermined:
		default:
			return FieldErrorf(EINVALID, field+".status", "unknown status %q; use fixed, open, not-affected or undetermined", p.Status)
		}
	}
	return nil
}

// AdvisoryFilter selects advisories.
type AdvisoryFilter struct {
	Source AdvisorySource
	// FixedIn keeps image-level advisories (those with fixed-in versions).
	FixedIn bool
	// Package keeps advisories naming this source package.
	Package string
	Limit   int
	Offset  int
}

// AdvisoryStore keeps advisories. Put is an idempotent upsert by id: a
// second import of the same file changes nothing.
type AdvisoryStore interface {
	// PutAdvisories records advs in one transaction, replacing advisories
	// with the same id, and returns how many were new.
	PutAdvisories(ctx context.Context, advs []*Advisory) (created int, err error)
	// FindAdvisory returns the whole advisory; ENOTFOUND when unknown.
	FindAdvisory(ctx context.Context, id string) (*Advisory, error)
	// ListAdvisories returns matching advisories sorted by id, without
	// their package lists and details, and the number of all matches.
	ListAdvisories(ctx context.Context, f AdvisoryFilter) ([]*Advisory, int, error)
	DeleteAdvisory(ctx context.Context, id string) error
}

// AdvisoriesByPackage is implemented by advisory stores that read the
// whole advisories naming any of many source packages at once (the
// store's *DB): a scan reads a version's candidates in one query, not one
// per package.
type AdvisoriesByPackage interface {
	// AdvisoriesForPackages returns every advisory naming one of names,
	// whole and sorted by id, each once.
	AdvisoriesForPackages(ctx context.Context, names []string) ([]*Advisory, error)
}

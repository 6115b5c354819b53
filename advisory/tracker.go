package advisory

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
)

// trackerURL is where a person reads a tracker entry.
const trackerURL = "https://security-tracker.debian.org/tracker/"

// ParseDebianTracker reads the Debian security tracker's JSON export
// (https://security-tracker.debian.org/tracker/data/json): an object keyed
// by source package, then by CVE id, with one entry per release. It returns
// one advisory per CVE id (merged across source packages), sorted by id.
// CVEs without any release entry are left out.
//
// Per release: status resolved with fixed_version "0" means not affected,
// resolved with a version means fixed there, open means no fix yet,
// undetermined is kept as undetermined (matched as affected). Debian's
// triage is kept on each entry: nodsa (with its reason), an urgency that
// is NVD's ("high**"), and the first later release with a fix.
func ParseDebianTracker(name string, data []byte) ([]*kiln.Advisory, error) {
	return ReadDebianTracker(name, bytes.NewReader(data))
}

// ReadDebianTracker is ParseDebianTracker reading from a stream: it holds
// one source package's JSON at a time (the export is tens of MB), plus the
// advisories it returns. EachDebianTracker holds none of those.
func ReadDebianTracker(name string, r io.Reader) ([]*kiln.Advisory, error) {
	lr := newLineReader(r)
	return readDebianTracker(name, lr, lr)
}

// EachDebianTracker reads the export as ReadDebianTracker does but returns
// nothing: for each source package, in file order, it calls fn with one
// advisory per CVE the package lists, holding that package's entries only
// (sorted by release), sorted by id. A CVE that several packages list
// comes once per package; MergeTracker, applied in the order they came,
// joins them into ReadDebianTracker's advisory. It holds one package at a
// time; an error from fn stops it and is returned.
func EachDebianTracker(name string, r io.Reader, fn func(advs []*kiln.Advisory) error) error {
	lr := newLineReader(r)
	return eachTrackerPackage(name, lr, lr, func(byID map[string]*kiln.Advisory) error {
		out := make([]*kiln.Advisory, 0, len(byID))
		for _, a := range byID {
			sortPackages(a)
			out = append(out, a)
		}
		slices.SortFunc(out, func(x, y *kiln.Advisory) int { return cmp.Compare(x.ID, y.ID) })
		return fn(out)
	})
}

// MergeTracker adds b's entries (the same CVE, as another source package of
// the export lists it) to a, which keeps its own summary: the first
// package's, as ReadDebianTracker does.
func MergeTracker(a, b *kiln.Advisory) {
	a.Packages = append(a.Packages, b.Packages...)
	sortPackages(a)
}

func sortPackages(a *kiln.Advisory) {
	slices.SortFunc(a.Packages, func(x, y kiln.AffectedPackage) int {
		return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Release, y.Release))
	})
}

// readDebianTracker decodes from r, which reads through lr, and merges.
func readDebianTracker(name string, r io.Reader, lr *lineReader) ([]*kiln.Advisory, error) {
	all := map[string]*kiln.Advisory{}
	err := eachTrackerPackage(name, r, lr, func(byID map[string]*kiln.Advisory) error {
		for id, a := range byID {
			if prev := all[id]; prev != nil {
				prev.Packages = append(prev.Packages, a.Packages...)
			} else {
				all[id] = a
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*kiln.Advisory, 0, len(all))
	for _, a := range all {
		sortPackages(a)
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *kiln.Advisory) int { return cmp.Compare(x.ID, y.ID) })
	return out, nil
}

// eachTrackerPackage decodes from r, which reads through lr, and calls fn
// with each source package's advisories (by CVE id, unsorted).
func eachTrackerPackage(name string, r io.Reader, lr *lineReader, fn func(byID map[string]*kiln.Advisory) error) error {
	d := &jsonDoc{name: name, lines: lr}
	dec := json.NewDecoder(r)
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return d.syntaxErr(err, 0, "")
	}
	if tok != json.Delim('{') {
		return d.errAt(0, "", "the file is not a JSON object; the tracker export is {\"source-package\": {\"CVE-…\": {…}}}")
	}
	for dec.More() {
		d.data, d.origin = lr.buf, lr.start
		koff := d.start(dec.InputOffset())
		kt, err := dec.Token()
		if err != nil {
			return d.syntaxErr(err, koff, "")
		}
		pkg := kt.(string)
		d.data, d.origin = lr.buf, lr.start
		voff := d.start(dec.InputOffset())
		lr.forget(voff)
		var cves map[string]fastCVE
		err = dec.Decode(&cves)
		sub := &jsonDoc{name: name, base: voff, origin: voff, lines: lr}
		byID := map[string]*kiln.Advisory{}
		var se *json.SyntaxError
		if err != nil && (errors.As(err, &se) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
			// The token reader finds the same error and says exactly where.
			sub.data = lr.buf[voff-lr.start:]
			if err := sub.slowTrackerPackage(byID, pkg, sub.data); err != nil {
				return err
			}
			return sub.syntaxErr(err, voff, pkg)
		}
		if err != nil || cves == nil || !fastTrackerPackage(byID, pkg, cves) {
			sub.data = lr.buf[voff-lr.start : dec.InputOffset()-lr.start]
			if err := sub.slowTrackerPackage(byID, pkg, sub.data); err != nil {
				return err
			}
		}
		if len(byID) > 0 {
			if err := fn(byID); err != nil {
				return err
			}
		}
	}
	d.data, d.origin = nil, 0
	if _, err := dec.Token(); err != nil {
		return d.syntaxErr(err, dec.InputOffset(), "")
	}
	off := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return d.errAt(off, "", "unexpected data after the JSON object; a file holds one JSON document")
	}
	return nil
}

// The tracker export is large (tens of MB): each package is decoded into
// typed structs first, which is several times faster than the token reader.
// Only when that fails or finds a bad value is the package read again with
// the token reader, which reports the file:line:col and JSON path. The fast
// path never accepts what the slow one refuses, except duplicate keys,
// which it does not see.

type fastCVE struct {
	Description string `json:"description"`
	Scope       string `json:"scope"`
	// Releases fails to decode for the tracker's "releases": [], and the
	// package is then read by the token reader.
	Releases map[string]fastRelease `json:"releases"`
}

type fastRelease struct {
	Status       string    `json:"status"`
	FixedVersion string    `json:"fixed_version"`
	Urgency      string    `json:"urgency"`
	NoDSA        string    `json:"nodsa"`
	NoDSAReason  string    `json:"nodsa_reason"`
	Repositories *struct{} `json:"repositories"` // only checked to be an object
}

// fastTrackerPackage merges one package's CVEs into byID, or reports false
// (and changes nothing) when anything is off.
func fastTrackerPackage(byID map[string]*kiln.Advisory, pkg string, cves map[string]fastCVE) bool {
	type add struct {
		id, desc string
		pkgs     []kiln.AffectedPackage
	}
	var adds []add
	for id, c := range cves {
		if len(c.Releases) == 0 {
			continue
		}
		a := add{id: id, desc: c.Description}
		for rel, r := range c.Releases {
			if r.Status == "" {
				return false
			}
			ap, field, _ := trackerEntry(pkg, rel, r.Status, r.FixedVersion, r.Urgency, r.NoDSA, r.NoDSAReason)
			if field != "" {
				return false
			}
			a.pkgs = append(a.pkgs, ap)
		}
		triage(a.pkgs)
		adds = append(adds, a)
	}
	for _, a := range adds {
		adv := byID[a.id]
		if adv == nil {
			adv = &kiln.Advisory{ID: a.id, Source: kiln.AdvisoryDebianTracker, Summary: a.desc, URL: trackerURL + a.id}
			byID[a.id] = adv
		}
		adv.Packages = append(adv.Packages, a.pkgs...)
	}
	return true
}

// slowTrackerPackage reads one package's value raw (d's data, starting at
// file offset d.base) with the token reader.
func (d *jsonDoc) slowTrackerPackage(byID map[string]*kiln.Advisory, pkg string, raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	n, err := d.value(dec, pkg)
	if err != nil {
		return err
	}
	return d.trackerPackage(byID, pkg, n)
}

// trackerEntry applies the tracker's status rules. On a bad value it
// returns the field at fault and why.
func trackerEntry(pkg, rel, status, fixed, urgency, nodsa, nodsaReason string) (ap kiln.AffectedPackage, field string, err error) {
	codename := Release(rel)
	ap = kiln.AffectedPackage{
		Ecosystem: releaseEcosystem(codename), Release: codename, Name: pkg,
		// "high**": the urgency is NVD's, not yet reviewed by Debian.
		Severity:    strings.TrimRight(urgency, "*"),
		SeverityNVD: strings.HasSuffix(urgency, "*"),
	}
	switch nodsaReason = strings.ToLower(strings.TrimSpace(nodsaReason)); {
	case nodsaReason == "ignored" || nodsaReason == "postponed":
		ap.NoDSA, ap.Note = nodsaReason, nodsa
	case nodsaReason != "":
		return ap, "nodsa_reason", fmt.Errorf("unknown nodsa_reason %q; the tracker uses ignored, postponed or none", nodsaReason)
	case nodsa != "":
		ap.NoDSA, ap.Note = "no-dsa", nodsa
	}
	if fixed != "" && fixed != "0" {
		if _, err := debian.ParseVersion(fixed); err != nil {
			return ap, "fixed_version", err
		}
	}
	switch status {
	case "resolved":
		switch fixed {
		case "0":
			ap.Status = kiln.AffectedNotAffected
		case "":
			ap.Status = kiln.AffectedUndetermined // resolved without a version: look at it
		default:
			ap.Status, ap.Fixed = kiln.AffectedFixed, fixed
		}
	case "open":
		ap.Status = kiln.AffectedOpen
	case "undetermined":
		ap.Status = kiln.AffectedUndetermined
	default:
		return ap, "status", fmt.Errorf("unknown status %q; the tracker uses resolved, open or undetermined", status)
	}
	return ap, "", nil
}

// trackerPackage reads one source package's CVEs, merging them into byID.
func (d *jsonDoc) trackerPackage(byID map[string]*kiln.Advisory, pkg string, n *node) error {
	if err := d.object(n, pkg); err != nil {
		return err
	}
	for i, id := range n.keys {
		c := n.vals[i]
		cp := pkg + "." + id
		if err := d.object(c, cp); err != nil {
			return err
		}
		desc, err := d.optString(c, "description", cp)
		if err != nil {
			return err
		}
		if _, err := d.optString(c, "scope", cp); err != nil {
			return err
		}
		rels := c.get("releases")
		if rels == nil || rels.kind == '0' || (rels.kind == '[' && len(rels.vals) == 0) {
			continue // the tracker writes [] for a CVE without release entries
		}
		if err := d.object(rels, cp+".releases"); err != nil {
			return err
		}
		a := byID[id]
		if a == nil {
			a = &kiln.Advisory{ID: id, Source: kiln.AdvisoryDebianTracker, Summary: desc, URL: trackerURL + id}
			byID[id] = a
		}
		var aps []kiln.AffectedPackage
		for j, rel := range rels.keys {
			ap, err := d.trackerRelease(pkg, rel, rels.vals[j], cp+".releases."+rel)
			if err != nil {
				return err
			}
			aps = append(aps, ap)
		}
		triage(aps)
		a.Packages = append(a.Packages, aps...)
	}
	return nil
}

// trackerRelease reads one release entry of one CVE of one package.
func (d *jsonDoc) trackerRelease(pkg, rel string, r *node, path string) (kiln.AffectedPackage, error) {
	if err := d.object(r, path); err != nil {
		return kiln.AffectedPackage{}, err
	}
	status, err := d.reqString(r, "status", path)
	if err != nil {
		return kiln.AffectedPackage{}, err
	}
	fixed, err := d.optString(r, "fixed_version", path)
	if err != nil {
		return kiln.AffectedPackage{}, err
	}
	urgency, err := d.optString(r, "urgency", path)
	if err != nil {
		return kiln.AffectedPackage{}, err
	}
	nodsa, err := d.optString(r, "nodsa", path)
	if err != nil {
		return kiln.AffectedPackage{}, err
	}
	nodsaReason, err := d.optString(r, "nodsa_reason", path)
	if err != nil {
		return kiln.AffectedPackage{}, err
	}
	if repos := r.get("repositories"); repos != nil && repos.kind != '0' {
		if err := d.object(repos, path+".repositories"); err != nil {
			return kiln.AffectedPackage{}, err
		}
	}
	ap, field, err := trackerEntry(pkg, rel, status, fixed, urgency, nodsa, nodsaReason)
	if field != "" {
		return ap, d.errNode(r.get(field), path+"."+field, "%v", err)
	}
	return ap, nil
}

// triage completes the release entries of one CVE in one source package:
// an urgency that is NVD's gives way to Debian's own urgency for another
// release when there is one (Debian's assessment is preferred), and a
// release with no fix names the first later release that has one.
func triage(aps []kiln.AffectedPackage) {
	debianSeverity := ""
	for _, ap := range aps {
		if !ap.SeverityNVD && isUrgency(ap.Severity) && (debianSeverity == "" || ap.Release == "sid") {
			debianSeverity = ap.Severity
		}
	}
	for i := range aps {
		ap := &aps[i]
		if ap.SeverityNVD && debianSeverity != "" {
			ap.Severity, ap.SeverityNVD = debianSeverity, false
		}
		if ap.Status != kiln.AffectedOpen {
			continue
		}
		rank, ok := releaseRank(ap.Release)
		if !ok {
			continue
		}
		best, bestRank := -1, 0
		for j, later := range aps {
			r, ok := releaseRank(later.Release)
			if ok && r > rank && later.Status == kiln.AffectedFixed && (best < 0 || r < bestRank) {
				best, bestRank = j, r
			}
		}
		if best >= 0 {
			ap.FixedLater = aps[best].Release + " " + aps[best].Fixed
		}
	}
}

// isUrgency tells a severity from the tracker's words that are not one.
func isUrgency(s string) bool {
	switch s {
	case "low", "medium", "high":
		return true
	}
	return false
}

// releaseRank orders releases: by number, sid last.
func releaseRank(codename string) (int, bool) {
	if codename == "sid" {
		return 1 << 20, true
	}
	n, err := strconv.Atoi(numbers[codename])
	return n, err == nil
}

package advisory

import (
	"bytes"
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
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
// undetermined is kept as undetermined (matched as affected).
func ParseDebianTracker(name string, data []byte) ([]*kiln.Advisory, error) {
	d := &jsonDoc{name: name, data: data}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, d.syntaxErr(err, 0, "")
	}
	if tok != json.Delim('{') {
		return nil, d.errAt(0, "", "the file is not a JSON object; the tracker export is {\"source-package\": {\"CVE-…\": {…}}}")
	}
	byID := map[string]*kiln.Advisory{}
	for dec.More() {
		koff := d.start(dec.InputOffset())
		kt, err := dec.Token()
		if err != nil {
			return nil, d.syntaxErr(err, koff, "")
		}
		pkg := kt.(string)
		n, err := d.value(dec, pkg)
		if err != nil {
			return nil, err
		}
		if err := d.trackerPackage(byID, pkg, n); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, d.syntaxErr(err, d.start(dec.InputOffset()), "")
	}
	off := d.start(dec.InputOffset())
	if _, err := dec.Token(); err != io.EOF {
		return nil, d.errAt(off, "", "unexpected data after the JSON object; a file holds one JSON document")
	}
	out := make([]*kiln.Advisory, 0, len(byID))
	for _, a := range byID {
		slices.SortFunc(a.Packages, func(x, y kiln.AffectedPackage) int {
			return cmp.Or(cmp.Compare(x.Name, y.Name), cmp.Compare(x.Release, y.Release))
		})
		out = append(out, a)
	}
	slices.SortFunc(out, func(x, y *kiln.Advisory) int { return cmp.Compare(x.ID, y.ID) })
	return out, nil
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
		for j, rel := range rels.keys {
			ap, err := d.trackerRelease(pkg, rel, rels.vals[j], cp+".releases."+rel)
			if err != nil {
				return err
			}
			a.Packages = append(a.Packages, ap)
		}
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
	if repos := r.get("repositories"); repos != nil {
		if err := d.object(repos, path+".repositories"); err != nil {
			return kiln.AffectedPackage{}, err
		}
	}
	codename := Release(rel)
	ap := kiln.AffectedPackage{
		Ecosystem: releaseEcosystem(codename), Release: codename, Name: pkg,
		// "high**": the urgency is NVD's, not yet reviewed by Debian.
		Severity: strings.TrimRight(urgency, "*"),
	}
	if fixed != "" && fixed != "0" {
		if _, err := ParseVersion(fixed); err != nil {
			return ap, d.errNode(r.get("fixed_version"), path+".fixed_version", "%v", err)
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
		return ap, d.errNode(r.get("status"), path+".status", "unknown status %q; the tracker uses resolved, open or undetermined", status)
	}
	return ap, nil
}

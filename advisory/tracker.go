package advisory

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
)

// trackerURL is where a person reads a tracker entry.
const trackerURL = "https://security-tracker.debian.org/tracker/"

type trackerCVE struct {
	Description string          `json:"description"`
	Scope       string          `json:"scope"`
	Releases    trackerReleases `json:"releases"`
}

type trackerRelease struct {
	Status       string            `json:"status"`
	Repositories map[string]string `json:"repositories"`
	FixedVersion *string           `json:"fixed_version"`
	Urgency      string            `json:"urgency"`
}

// trackerReleases is the "releases" object; the tracker writes an empty
// list ([]) when a CVE has no release entry.
type trackerReleases map[string]trackerRelease

func (r *trackerReleases) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		var l []json.RawMessage
		if err := json.Unmarshal(t, &l); err != nil {
			return err
		}
		if len(l) != 0 {
			return errors.New("releases is a non-empty list; want an object keyed by release codename")
		}
		*r = nil
		return nil
	}
	m := map[string]trackerRelease{}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*r = m
	return nil
}

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
		voff := d.start(dec.InputOffset())
		var cves map[string]trackerCVE
		if err := dec.Decode(&cves); err != nil {
			return nil, d.decodeErr(err, voff, pkg)
		}
		for id, c := range cves {
			if err := d.trackerCVE(byID, pkg, id, c, voff); err != nil {
				return nil, err
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, d.syntaxErr(err, d.start(dec.InputOffset()), "")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, d.errAt(d.start(dec.InputOffset()), "", "unexpected data after the JSON object; a file holds one JSON document")
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

// decodeErr turns an encoding/json error inside the value that starts at
// off into an error with file:line:col and the JSON path.
func (d *jsonDoc) decodeErr(err error, off int64, pkg string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := pkg
		if te.Field != "" {
			path += "." + te.Field
		}
		return d.errAt(off+te.Offset-1, path, "is a JSON %s; want %s", te.Value, jsonTypeName(te.Type.String()))
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return d.errAt(off+se.Offset-1, pkg, "JSON syntax error: %v; fix the file or download it again", se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return d.errAt(int64(len(d.data)), pkg, "the file ends in the middle of a JSON value; it is truncated")
	}
	return d.errAt(off, pkg, "%v", err)
}

func jsonTypeName(goType string) string {
	switch {
	case goType == "string" || goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "tracker"):
		return "an object"
	}
	return goType
}

func (d *jsonDoc) trackerCVE(byID map[string]*kiln.Advisory, pkg, id string, c trackerCVE, off int64) error {
	if len(c.Releases) == 0 {
		return nil
	}
	a := byID[id]
	if a == nil {
		a = &kiln.Advisory{ID: id, Source: kiln.AdvisoryDebianTracker, Summary: c.Description, URL: trackerURL + id}
		byID[id] = a
	}
	for rel, r := range c.Releases {
		path := fmt.Sprintf("%s.%s.releases.%s", pkg, id, rel)
		codename := Release(rel)
		ap := kiln.AffectedPackage{
			Ecosystem: releaseEcosystem(codename), Release: codename, Name: pkg,
			Severity: strings.TrimRight(r.Urgency, "*"),
		}
		fixed := ""
		if r.FixedVersion != nil {
			fixed = *r.FixedVersion
		}
		if fixed != "" && fixed != "0" {
			if _, err := ParseVersion(fixed); err != nil {
				return d.errAt(off, path+".fixed_version", "%v", err)
			}
		}
		switch r.Status {
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
			return d.errAt(off, path+".status", "unknown status %q; the tracker uses resolved, open or undetermined", r.Status)
		}
		a.Packages = append(a.Packages, ap)
	}
	return nil
}

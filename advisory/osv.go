package advisory

import (
	"fmt"
	"slices"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
)

// ParseOSV reads one OSV JSON record (https://ossf.github.io/osv-schema/).
// name is used in error messages, usually the file name. It keeps the
// affected entries of Debian ecosystems ("Debian", "Debian:12"; Freexian's
// ELA records use the same) and their ECOSYSTEM ranges; other ecosystems and
// GIT/SEMVER ranges are type-checked and then left out. The enumerated
// "versions" lists are not used: for Debian they repeat what the ranges say.
//
// Errors name the file, line and column, and the JSON path of the bad value,
// e.g. "DLA-1-1.json:12:9: affected[0].ranges[1].events[0].fixed".
func ParseOSV(name string, data []byte) (*kiln.Advisory, error) {
	d, err := parseJSON(name, data)
	if err != nil {
		return nil, err
	}
	return d.osv()
}

func (d *jsonDoc) osv() (*kiln.Advisory, error) {
	r := d.root
	if err := d.object(r, ""); err != nil {
		return nil, err
	}
	a := &kiln.Advisory{Source: kiln.AdvisoryOSV}
	var err error
	if a.ID, err = d.reqString(r, "id", ""); err != nil {
		return nil, err
	}
	if a.Summary, err = d.optString(r, "summary", ""); err != nil {
		return nil, err
	}
	if a.Details, err = d.optString(r, "details", ""); err != nil {
		return nil, err
	}
	if a.Modified, err = d.timeField(r, "modified", true); err != nil {
		return nil, err
	}
	if a.Published, err = d.timeField(r, "published", false); err != nil {
		return nil, err
	}
	if a.Withdrawn, err = d.timeField(r, "withdrawn", false); err != nil {
		return nil, err
	}
	for _, key := range []string{"aliases", "upstream"} {
		ids, err := d.optStrings(r, key, "")
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !slices.Contains(a.Aliases, id) {
				a.Aliases = append(a.Aliases, id)
			}
		}
	}
	if a.Related, err = d.optStrings(r, "related", ""); err != nil {
		return nil, err
	}
	if len(a.Related) == 0 {
		a.Related = nil
	}
	if a.URL, err = d.referenceURL(r); err != nil {
		return nil, err
	}
	topSeverity, err := d.severity(r, "")
	if err != nil {
		return nil, err
	}

	affected, err := d.optArray(r, "affected", "", "affected packages")
	if err != nil {
		return nil, err
	}
	var others []string
	for i, af := range affected {
		path := fmt.Sprintf("affected[%d]", i)
		pkgs, eco, err := d.osvAffected(af, path, topSeverity)
		if err != nil {
			return nil, err
		}
		if eco != "" {
			others = append(others, eco)
		}
		a.Packages = append(a.Packages, pkgs...)
	}
	if len(a.Packages) == 0 && a.Withdrawn.IsZero() {
		if len(others) > 0 {
			return nil, d.errNode(r, "affected", "advisory %s has no package in a Debian ecosystem (it names %s); kiln matches Debian packages only, so leave this file out", a.ID, others[0])
		}
		return nil, d.errNode(r, "affected", "advisory %s names no affected Debian package; there is nothing to match", a.ID)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", d.name, err)
	}
	return a, nil
}

func (d *jsonDoc) timeField(obj *node, key string, required bool) (time.Time, error) {
	var s string
	var err error
	if required {
		s, err = d.reqString(obj, key, "")
	} else {
		s, err = d.optString(obj, key, "")
	}
	if err != nil || s == "" {
		return time.Time{}, err
	}
	t, perr := time.Parse(time.RFC3339Nano, s)
	if perr != nil {
		return time.Time{}, d.errNode(obj.get(key), key, "%q is not an RFC 3339 time; write e.g. 2024-03-18T13:15:07Z", s)
	}
	return t.UTC(), nil
}

// referenceURL picks the advisory's own page: the first ADVISORY
// reference, else the first WEB one.
func (d *jsonDoc) referenceURL(r *node) (string, error) {
	refs, err := d.optArray(r, "references", "", "references")
	if err != nil {
		return "", err
	}
	var advisory, web string
	for i, ref := range refs {
		path := fmt.Sprintf("references[%d]", i)
		if err := d.object(ref, path); err != nil {
			return "", err
		}
		typ, err := d.optString(ref, "type", path)
		if err != nil {
			return "", err
		}
		url, err := d.optString(ref, "url", path)
		if err != nil {
			return "", err
		}
		switch {
		case typ == "ADVISORY" && advisory == "":
			advisory = url
		case typ == "WEB" && web == "":
			web = url
		}
	}
	if advisory != "" {
		return advisory, nil
	}
	return web, nil
}

// severity reads an OSV severity array and returns its first score, e.g.
// "CVSS_V3:CVSS:3.1/AV:N/…".
func (d *jsonDoc) severity(obj *node, path string) (string, error) {
	sevs, err := d.optArray(obj, "severity", path, "severity objects")
	if err != nil {
		return "", err
	}
	first := ""
	for i, s := range sevs {
		p := joinKey(path, fmt.Sprintf("severity[%d]", i))
		if err := d.object(s, p); err != nil {
			return "", err
		}
		typ, err := d.optString(s, "type", p)
		if err != nil {
			return "", err
		}
		score, err := d.reqString(s, "score", p)
		if err != nil {
			return "", err
		}
		if first == "" {
			first = typ + ":" + score
		}
	}
	return first, nil
}

// osvAffected reads one affected entry. It returns the Debian ranges as
// AffectedPackages, or the entry's ecosystem when it is not Debian.
func (d *jsonDoc) osvAffected(af *node, path, topSeverity string) ([]kiln.AffectedPackage, string, error) {
	if err := d.object(af, path); err != nil {
		return nil, "", err
	}
	var eco, name string
	if pkg := af.get("package"); pkg != nil {
		pp := path + ".package"
		if err := d.object(pkg, pp); err != nil {
			return nil, "", err
		}
		var err error
		if eco, err = d.reqString(pkg, "ecosystem", pp); err != nil {
			return nil, "", err
		}
		if name, err = d.reqString(pkg, "name", pp); err != nil {
			return nil, "", err
		}
		if _, err = d.optString(pkg, "purl", pp); err != nil {
			return nil, "", err
		}
	}
	if _, err := d.optStrings(af, "versions", path); err != nil {
		return nil, "", err
	}
	sev, err := d.affectedSeverity(af, path)
	if err != nil {
		return nil, "", err
	}
	if sev == "" {
		sev = topSeverity
	}
	ranges, err := d.optArray(af, "ranges", path, "range objects ({\"type\": \"ECOSYSTEM\", \"events\": [...]})")
	if err != nil {
		return nil, "", err
	}
	release, debian := ecosystemRelease(eco)
	var out []kiln.AffectedPackage
	for j, rg := range ranges {
		rp := fmt.Sprintf("%s.ranges[%d]", path, j)
		if err := d.object(rg, rp); err != nil {
			return nil, "", err
		}
		typ, err := d.reqString(rg, "type", rp)
		if err != nil {
			return nil, "", err
		}
		check := debian && typ == "ECOSYSTEM"
		ivs, err := d.events(rg, rp, check)
		if err != nil {
			return nil, "", err
		}
		if !check {
			continue
		}
		for _, iv := range ivs {
			out = append(out, kiln.AffectedPackage{
				Ecosystem: eco, Release: release, Name: name,
				Introduced: iv.introduced, Fixed: iv.fixed, LastAffected: iv.lastAffected,
				Status: iv.status(), Severity: sev,
			})
		}
	}
	if eco != "" && !debian {
		return nil, eco, nil
	}
	return out, "", nil
}

// affectedSeverity reads the Debian converters' per-package urgency or a
// database's severity word.
func (d *jsonDoc) affectedSeverity(af *node, path string) (string, error) {
	for _, obj := range []string{"ecosystem_specific", "database_specific"} {
		o := af.get(obj)
		if o == nil || o.kind == '0' {
			continue
		}
		op := joinKey(path, obj)
		if err := d.object(o, op); err != nil {
			return "", err
		}
		for _, key := range []string{"urgency", "severity"} {
			if v := o.get(key); v != nil && v.kind == 's' && v.str != "" {
				return v.str, nil
			}
		}
	}
	return d.severity(af, path)
}

type interval struct {
	introduced, fixed, lastAffected string
}

func (iv interval) status() kiln.AffectedStatus {
	if iv.fixed != "" {
		return kiln.AffectedFixed
	}
	return kiln.AffectedOpen
}

type event struct {
	kind string // introduced, fixed, last_affected, limit
	raw  string
	v    debian.Version
	zero bool // introduced "0": since the first version
}

// events reads a range's events and, when check is set, parses their
// versions as Debian versions and turns them into intervals following the
// OSV evaluation rules: sorted by version, an introduced opens an interval,
// the next fixed or last_affected closes it.
func (d *jsonDoc) events(rg *node, rp string, check bool) ([]interval, error) {
	evs := rg.get("events")
	if evs == nil {
		return nil, d.errNode(rg, rp+".events", "is missing; a range needs events, e.g. [{\"introduced\": \"0\"}, {\"fixed\": \"1.2-3\"}]")
	}
	if evs.kind != '[' {
		return nil, d.errNode(evs, rp+".events", "is %s; want an array of events", evs.kindName())
	}
	if len(evs.vals) == 0 {
		return nil, d.errNode(evs, rp+".events", "is empty; a range needs at least an introduced event")
	}
	list := make([]event, 0, len(evs.vals))
	hasIntroduced := false
	for k, ev := range evs.vals {
		ep := fmt.Sprintf("%s.events[%d]", rp, k)
		if err := d.object(ev, ep); err != nil {
			return nil, err
		}
		if len(ev.keys) != 1 {
			return nil, d.errNode(ev, ep, "has %d keys; an event has exactly one of introduced, fixed, last_affected or limit", len(ev.keys))
		}
		kind, val := ev.keys[0], ev.vals[0]
		kp := ep + "." + kind
		switch kind {
		case "introduced", "fixed", "last_affected", "limit":
		default:
			return nil, d.errNode(ev, kp, "unknown event %q; use introduced, fixed, last_affected or limit", kind)
		}
		if val.kind != 's' || val.str == "" {
			return nil, d.errNode(val, kp, "is %s; want a non-empty version string", val.kindName())
		}
		e := event{kind: kind, raw: val.str}
		if kind == "introduced" {
			hasIntroduced = true
		}
		if check && kind != "limit" {
			if kind == "introduced" && val.str == "0" {
				e.zero = true
			} else {
				v, err := debian.ParseVersion(val.str)
				if err != nil {
					return nil, d.errNode(val, kp, "%v", err)
				}
				e.v = v
			}
		}
		list = append(list, e)
	}
	if !hasIntroduced {
		return nil, d.errNode(evs, rp+".events", "has no introduced event; add {\"introduced\": \"0\"} for \"since the first version\"")
	}
	if !check {
		return nil, nil
	}
	slices.SortStableFunc(list, func(a, b event) int {
		switch {
		case a.zero && b.zero:
			return 0
		case a.zero:
			return -1
		case b.zero:
			return 1
		}
		return a.v.Compare(b.v)
	})
	var out []interval
	var open *interval
	for _, e := range list {
		switch e.kind {
		case "introduced":
			if open == nil {
				open = &interval{}
				if !e.zero {
					open.introduced = e.raw
				}
			}
		case "fixed":
			if open != nil {
				open.fixed = e.raw
				out = append(out, *open)
				open = nil
			}
		case "last_affected":
			if open != nil {
				open.lastAffected = e.raw
				out = append(out, *open)
				open = nil
			}
		}
	}
	if open != nil {
		out = append(out, *open)
	}
	return out, nil
}

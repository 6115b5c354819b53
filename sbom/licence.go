package sbom

import (
	"regexp"
	"sort"
	"strings"
)

// spdxIDs maps the licence short names Debian's copyright format uses
// (lower-cased) to SPDX licence ids. Names not here become
// LicenseRef-<name>.
var spdxIDs = map[string]string{
	"apache-2.0": "Apache-2.0", "apache-2": "Apache-2.0",
	"artistic": "Artistic-1.0-Perl", "artistic-1.0": "Artistic-1.0", "artistic-2.0": "Artistic-2.0",
	"bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsd-4-clause": "BSD-4-Clause",
	"bsl-1.0": "BSL-1.0", "cc0-1.0": "CC0-1.0", "cc0": "CC0-1.0",
	"cc-by-3.0": "CC-BY-3.0", "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-3.0": "CC-BY-SA-3.0", "cc-by-sa-4.0": "CC-BY-SA-4.0",
	"curl": "curl", "expat": "MIT", "mit": "MIT", "isc": "ISC", "zlib": "Zlib", "x11": "X11",
	"fsfap": "FSFAP", "fsful": "FSFUL", "fsfullr": "FSFULLR", "openssl": "OpenSSL",
	"gpl-1": "GPL-1.0-only", "gpl-1+": "GPL-1.0-or-later",
	"gpl-2": "GPL-2.0-only", "gpl-2+": "GPL-2.0-or-later", "gpl-2.0": "GPL-2.0-only", "gpl-2.0+": "GPL-2.0-or-later",
	"gpl-3": "GPL-3.0-only", "gpl-3+": "GPL-3.0-or-later", "gpl-3.0": "GPL-3.0-only", "gpl-3.0+": "GPL-3.0-or-later",
	"lgpl-2": "LGPL-2.0-only", "lgpl-2+": "LGPL-2.0-or-later",
	"lgpl-2.1": "LGPL-2.1-only", "lgpl-2.1+": "LGPL-2.1-or-later",
	"lgpl-3": "LGPL-3.0-only", "lgpl-3+": "LGPL-3.0-or-later", "lgpl-3.0": "LGPL-3.0-only", "lgpl-3.0+": "LGPL-3.0-or-later",
	"agpl-3": "AGPL-3.0-only", "agpl-3+": "AGPL-3.0-or-later",
	"gfdl-1.2": "GFDL-1.2-only", "gfdl-1.2+": "GFDL-1.2-or-later", "gfdl-1.3": "GFDL-1.3-only", "gfdl-1.3+": "GFDL-1.3-or-later",
	"mpl-1.1": "MPL-1.1", "mpl-2.0": "MPL-2.0", "epl-1.0": "EPL-1.0", "epl-2.0": "EPL-2.0",
	"psf-2": "PSF-2.0", "python-2.0": "Python-2.0", "unlicense": "Unlicense", "wtfpl": "WTFPL", "0bsd": "0BSD",
	"unicode-dfs-2016": "Unicode-DFS-2016", "bzip2-1.0.6": "bzip2-1.0.6", "ofl-1.1": "OFL-1.1", "tcl": "TCL",
	"beerware": "Beerware", "postgresql": "PostgreSQL", "ruby": "Ruby", "vim": "Vim", "sleepycat": "Sleepycat",
}

var refCharRE = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// spdxLicence maps one Debian licence short name to an SPDX id or a
// LicenseRef-.
func spdxLicence(name string) string {
	name = strings.TrimSpace(name)
	if id, ok := spdxIDs[strings.ToLower(name)]; ok {
		return id
	}
	ref := strings.Trim(refCharRE.ReplaceAllString(name, "-"), "-")
	if ref == "" {
		ref = "unnamed"
	}
	return "LicenseRef-" + ref
}

// spdxExpression turns the first line of a DEP-5 License field ("GPL-2+
// or Artistic", "LGPL-2.1+ and BSD-3-clause", "GPL-2+ with OpenSSL
// exception") into an SPDX expression. An exception clause makes the
// whole operand a LicenseRef, since SPDX lists only some exceptions.
func spdxExpression(field string) string {
	field = strings.TrimSpace(field)
	if field == "" {
		return ""
	}
	var out []string
	for _, or := range splitWord(field, "or") {
		var and []string
		for _, a := range splitWord(or, "and") {
			for _, c := range strings.Split(a, ",") {
				if c = strings.TrimSpace(c); c != "" {
					and = append(and, spdxLicence(c))
				}
			}
		}
		if len(and) == 0 {
			continue
		}
		s := strings.Join(and, " AND ")
		if len(and) > 1 {
			s = "(" + s + ")"
		}
		out = append(out, s)
	}
	if len(out) == 1 {
		return strings.TrimSuffix(strings.TrimPrefix(out[0], "("), ")")
	}
	return strings.Join(out, " OR ")
}

// splitWord splits s around the whole word w, in any case.
func splitWord(s, w string) []string {
	f := strings.Fields(s)
	var parts []string
	var cur []string
	for _, x := range f {
		if strings.EqualFold(x, w) {
			parts = append(parts, strings.Join(cur, " "))
			cur = nil
			continue
		}
		cur = append(cur, x)
	}
	return append(parts, strings.Join(cur, " "))
}

// combine joins the licences of a package's files into one expression,
// AND-ed, each once, sorted.
func combine(exprs []string) string {
	seen := map[string]bool{}
	var uniq []string
	for _, e := range exprs {
		if e != "" && !seen[e] {
			seen[e] = true
			uniq = append(uniq, e)
		}
	}
	sort.Strings(uniq)
	if len(uniq) == 1 {
		return uniq[0]
	}
	for i, e := range uniq {
		if strings.Contains(e, " OR ") {
			uniq[i] = "(" + e + ")"
		}
	}
	return strings.Join(uniq, " AND ")
}

// licenceRefs lists the LicenseRef- ids an expression uses.
func licenceRefs(expr string) []string {
	var refs []string
	for _, tok := range strings.FieldsFunc(expr, func(r rune) bool { return r == ' ' || r == '(' || r == ')' }) {
		if strings.HasPrefix(tok, "LicenseRef-") {
			refs = append(refs, tok)
		}
	}
	return refs
}

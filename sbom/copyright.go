package sbom

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	kiln "github.com/kiln-project/kiln"
)

// maxCopyright bounds one copyright file; the largest in Debian are a few
// MiB.
const maxCopyright = 16 << 20

// LicenceStats says how many packages ReadLicenses found a licence for.
type LicenceStats struct {
	// Licensed packages have a machine-readable copyright file with at
	// least one License field.
	Licensed int `json:"licensed"`
	// NotMachineReadable packages have a free-form copyright file.
	NotMachineReadable int `json:"not_machine_readable"`
	// Missing packages have no copyright file (or an unreadable one).
	Missing int `json:"missing"`
}

// ReadLicenses reads the licences of pkgs from the root filesystem at
// root: /usr/share/doc/NAME/copyright, when it is in Debian's
// machine-readable format (DEP-5). The result maps a package name to an
// SPDX expression, the AND of the distinct licences of its Files
// paragraphs. Symbolic links are followed inside root only (a -dev
// package's doc directory often links to its library's). Packages without
// such a file are left out and counted.
func ReadLicenses(root string, pkgs []kiln.Package) (map[string]string, LicenceStats, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, LicenceStats{}, fmt.Errorf("read licences: %w", err)
	}
	defer r.Close()
	out := map[string]string{}
	var st LicenceStats
	seen := map[string]bool{}
	for _, p := range pkgs {
		if seen[p.Name] {
			continue
		}
		seen[p.Name] = true
		expr, err := readCopyright(r.FS(), path.Join("usr/share/doc", p.Name, "copyright"))
		switch {
		case errors.Is(err, errNotDEP5):
			st.NotMachineReadable++
		case err != nil:
			st.Missing++
		case expr == "":
			st.NotMachineReadable++
		default:
			out[p.Name] = expr
			st.Licensed++
		}
	}
	return out, st, nil
}

var errNotDEP5 = errors.New("not a machine-readable copyright file")

func readCopyright(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCopyright))
	if err != nil {
		return "", err
	}
	return ParseCopyright(b)
}

// ParseCopyright returns the SPDX licence expression of a DEP-5
// copyright file: the AND of the distinct licences named by its Files
// paragraphs (stand-alone License paragraphs only hold texts; a License in
// the header paragraph counts for the whole package). errNotDEP5 when the
// first paragraph has no Format field naming the copyright format.
func ParseCopyright(b []byte) (string, error) {
	if !isDEP5(b) {
		return "", errNotDEP5
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxCopyright)
	header, files := true, false
	var licence string
	var exprs []string
	flush := func() {
		if (files || header) && licence != "" {
			exprs = append(exprs, spdxExpression(licence))
		}
		files, licence = false, ""
	}
	started := false
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			if started {
				flush()
				header, started = false, false
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue // a continuation line (licence text), or a comment
		}
		started = true
		k, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch {
		case strings.EqualFold(k, "Files"):
			files = true
		case strings.EqualFold(k, "License"):
			licence = strings.TrimSpace(val)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	flush()
	return combine(exprs), nil
}

// isDEP5 reports whether the first paragraph has a Format field naming
// Debian's copyright format.
func isDEP5(b []byte) bool {
	b = bytes.TrimLeft(b, "\n")
	head, _, _ := bytes.Cut(b, []byte("\n\n"))
	for line := range bytes.SplitSeq(head, []byte("\n")) {
		k, v, ok := bytes.Cut(line, []byte(":"))
		if ok && strings.EqualFold(string(k), "Format") {
			return bytes.Contains(v, []byte("copyright-format")) || bytes.Contains(v, []byte("dep5")) || bytes.Contains(v, []byte("DEP-5"))
		}
	}
	return false
}

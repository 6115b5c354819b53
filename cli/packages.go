package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	kiln "github.com/kiln-project/kiln"
)

// PackageQuery is the dpkg-query command whose output readPackages reads
// with source packages, which advisories name.
const PackageQuery = `dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n'`

// readPackages reads a package manifest file: either a JSON array of
// {"name","version","architecture","source","source_version"} objects
// (kiln.Package, as kiln's own manifests are), or lines
// "NAME VERSION [ARCH [SOURCE [SOURCE_VERSION]]]" as PackageQuery prints
// them (tabs or spaces; blank lines and # comments ignored). A source
// equal to the binary package, and a source version equal to the
// binary's, are dropped, as a kiln build records them. field names the
// flag or argument in errors.
func readPackages(path string) ([]kiln.Package, error) {
	return readPackagesAs("--packages", path)
}

func readPackagesAs(field, path string) ([]kiln.Package, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, field, "cannot read package manifest: %v", err)
	}
	pkgs, err := parsePackages(field, path, data)
	if err != nil {
		return nil, err
	}
	if err := kiln.ValidatePackages("packages", pkgs); err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, field, "%s: %s: %s", path, kiln.ErrorField(err), kiln.ErrorMessage(err))
	}
	return pkgs, nil
}

// parsePackages is readPackages on the file's bytes.
func parsePackages(field, path string, data []byte) ([]kiln.Package, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var pkgs []kiln.Package
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pkgs); err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, field, "%s: not a JSON array of {name, version, architecture}: %v", path, err)
		}
		for i, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				return nil, kiln.FieldErrorf(kiln.EINVALID, field, "%s: entry %d needs a name and a version", path, i)
			}
		}
		return pkgs, nil
	}
	var pkgs []kiln.Package
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 || len(f) > 5 {
			return nil, kiln.FieldErrorf(kiln.EINVALID, field, "%s:%d: want NAME VERSION [ARCH [SOURCE [SOURCE_VERSION]]] (%s), got %q", path, n, PackageQuery, line)
		}
		p := kiln.Package{Name: f[0], Version: f[1]}
		if len(f) >= 3 {
			p.Architecture = f[2]
		}
		if len(f) >= 4 {
			p.Source = f[3]
		}
		if len(f) == 5 && f[4] != p.Version {
			p.SourceVersion = f[4]
		}
		if p.Source == p.Name && p.SourceVersion == "" {
			p.Source = ""
		}
		pkgs = append(pkgs, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return pkgs, nil
}

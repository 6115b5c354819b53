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

// readPackages reads a package manifest file: either a JSON array of
// {"name","version","architecture"} objects, or lines "NAME VERSION ARCH" as
// printed by `dpkg-query -W -f='${Package} ${Version} ${Architecture}\n'`
// (tabs or spaces; blank lines and # comments ignored).
func readPackages(path string) ([]kiln.Package, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "cannot read package manifest: %v", err)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '[' {
		var pkgs []kiln.Package
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&pkgs); err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "%s: not a JSON array of {name, version, architecture}: %v", path, err)
		}
		for i, p := range pkgs {
			if p.Name == "" || p.Version == "" {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "%s: entry %d needs a name and a version", path, i)
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
		if len(f) < 2 || len(f) > 3 {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--packages", "%s:%d: want NAME VERSION [ARCH], got %q", path, n, line)
		}
		p := kiln.Package{Name: f[0], Version: f[1]}
		if len(f) == 3 {
			p.Architecture = f[2]
		}
		pkgs = append(pkgs, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return pkgs, nil
}

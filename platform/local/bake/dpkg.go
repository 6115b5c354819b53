package bake

import (
	"bufio"
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-project/kiln"
)

// Manifest reads the packages installed in root from dpkg's status file
// (/var/lib/dpkg/status), sorted by name and architecture. Only packages
// whose status is "install ok installed" count: removed packages whose
// configuration files remain are not installed. The source package (and its
// version when it differs) is kept, since security advisories name source
// packages.
func Manifest(root string) ([]kiln.Package, error) {
	f, err := openInRoot(root, "var/lib/dpkg/status")
	if err != nil {
		return nil, fmt.Errorf("read package manifest: %w", err)
	}
	defer f.Close()
	var pkgs []kiln.Package
	var cur kiln.Package
	var status string
	flush := func() {
		if cur.Name != "" && status == "install ok installed" {
			if cur.Source == cur.Name && cur.SourceVersion == "" {
				cur.Source = "" // the same as the binary: nothing to add
			}
			pkgs = append(pkgs, cur)
		}
		cur, status = kiln.Package{}, ""
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue // continuation of a multi-line field
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Name = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Architecture = v
		case "Status":
			status = v
		case "Source":
			// "openssl" or "openssl (3.0.11-1~deb12u2)" when the source
			// version differs from the binary's (binNMUs): advisories
			// name source packages.
			name, ver, _ := strings.Cut(v, " ")
			cur.Source = name
			cur.SourceVersion = strings.Trim(strings.TrimSpace(ver), "()")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	flush()
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Architecture < pkgs[j].Architecture
	})
	return pkgs, nil
}

package bake

import (
	"fmt"
	"sort"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
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
	err = debian.ScanParagraphs(f, []string{"Package", "Version", "Architecture", "Status", "Source"}, func(p debian.Paragraph) error {
		if p["Package"] == "" || p["Status"] != "install ok installed" {
			return nil
		}
		pkg := kiln.Package{Name: p["Package"], Version: p["Version"], Architecture: p["Architecture"]}
		if src := p["Source"]; src != "" {
			// "openssl" or "openssl (3.0.11-1~deb12u2)" when the source
			// version differs from the binary's (binNMUs): advisories
			// name source packages.
			name, ver, _ := strings.Cut(src, " ")
			if name != pkg.Name || ver != "" {
				pkg.Source, pkg.SourceVersion = name, strings.Trim(strings.TrimSpace(ver), "()")
			}
		}
		pkgs = append(pkgs, pkg)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	sort.Slice(pkgs, func(i, j int) bool {
		if pkgs[i].Name != pkgs[j].Name {
			return pkgs[i].Name < pkgs[j].Name
		}
		return pkgs[i].Architecture < pkgs[j].Architecture
	})
	return pkgs, nil
}

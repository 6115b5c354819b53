package definition

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// KernelPackage is the package an image declares to carry the kernel its
// disk images boot (Debian's metapackage for the current amd64 kernel).
const KernelPackage = "linux-image-amd64"

// isKernel reports whether a packages entry (NAME[:ARCH][=VERSION]) is a
// Debian kernel image: linux-image-amd64, linux-image-cloud-amd64, or a
// pinned linux-image-6.1.0-28-amd64.
func isKernel(entry string) bool {
	name, _, _ := strings.Cut(entry, "=")
	name, _, _ = strings.Cut(name, ":")
	return strings.HasPrefix(name, "linux-image-")
}

// checkKernels requires every image that declares a disk format to get a
// kernel from its own packages or, through base = image.NAME, from a base
// image's, and not to purge it on the way: a disk image boots the kernel
// installed in the image (docs/definitions.md). imgs holds the images
// decoded so far; bases are known to exist and form no cycle.
func checkKernels(decls map[string]*imageDecl, order []string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, name := range order {
		d := decls[name]
		disks := d.img.DiskFormats()
		if len(disks) == 0 || d.formats == nil {
			continue
		}
		fs := make([]string, len(disks))
		for i, f := range disks {
			fs[i] = string(f)
		}
		what := "disk format " + strings.Join(fs, " and ") + " (a disk image boots the kernel installed in the image)"
		var chain []string
		found := false
		for cur := d; cur != nil; {
			if p := kernelIn(cur.img.Purge); p != "" {
				if cur == d {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Disk image without a kernel",
						Detail:  fmt.Sprintf("image %q declares %s, but it purges %q; remove it from purge.", name, what, p),
						Subject: d.purgeRange.Ptr()})
				} else {
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Disk image without a kernel",
						Detail:  fmt.Sprintf("image %q declares %s, but its base image %q purges %q; remove it from %q's purge, or add %q to %q's packages.", name, what, cur.img.Name, p, cur.img.Name, KernelPackage, name),
						Subject: d.formats.Range.Ptr()})
				}
				found = true // reported
				break
			}
			if kernelIn(cur.img.Packages) != "" {
				found = true
				break
			}
			if cur.img.Base == nil {
				break
			}
			chain = append(chain, cur.img.Base.Image)
			cur = decls[cur.img.Base.Image]
		}
		if found {
			continue
		}
		where := "its packages do not install one"
		if len(chain) > 0 {
			where = fmt.Sprintf("neither its packages nor its base images' (%s) install one", strings.Join(chain, ", "))
		}
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Disk image without a kernel",
			Detail: fmt.Sprintf("image %q declares %s, but %s; add %q to its packages (or to a base image's packages), or remove the disk formats.",
				name, what, where, KernelPackage),
			Subject: d.formats.Expr.Range().Ptr(), Context: d.formats.Range.Ptr()})
	}
	return diags
}

// kernelIn returns the first kernel package in pkgs, or "".
func kernelIn(pkgs []string) string {
	for _, p := range pkgs {
		if isKernel(p) {
			return p
		}
	}
	return ""
}

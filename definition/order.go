package definition

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
)

// checkBases reports bases naming unknown images and cycles of images built
// on each other, each cycle once, named in full.
func checkBases(decls map[string]*imageDecl) hcl.Diagnostics {
	var diags hcl.Diagnostics
	names := slices.Sorted(maps.Keys(decls))
	for _, name := range names {
		d := decls[name]
		if d.img.Base == nil {
			continue
		}
		if _, ok := decls[d.img.Base.Image]; !ok {
			detail := fmt.Sprintf("image %q is built on image %q, which no *.kiln.hcl file in the estate defines.", name, d.img.Base.Image)
			if s := suggest(d.img.Base.Image, names); s != "" {
				detail += fmt.Sprintf(" Did you mean image.%s?", s)
			} else {
				detail += " Define it, or name one of: " + strings.Join(names, ", ") + "."
			}
			diags = append(diags, rangeError(d.baseRange, "Unknown base image", detail))
		}
	}
	reported := map[string]bool{}
	for _, start := range names {
		// Each image has at most one base, so walking from start either
		// ends or enters a cycle.
		pos := map[string]int{}
		var path []string
		for cur := start; ; {
			if i, seen := pos[cur]; seen {
				cycle := path[i:]
				if !reported[cycle[0]] {
					for _, n := range cycle {
						reported[n] = true
					}
					diags = append(diags, cycleDiag(decls, cycle))
				}
				break
			}
			if reported[cur] {
				break
			}
			d, ok := decls[cur]
			if !ok || d.img.Base == nil {
				break
			}
			pos[cur] = len(path)
			path = append(path, cur)
			cur = d.img.Base.Image
		}
	}
	return diags
}

// cycleDiag names the cycle starting from its alphabetically first image,
// at that image's base attribute.
func cycleDiag(decls map[string]*imageDecl, cycle []string) *hcl.Diagnostic {
	first := slices.Index(cycle, slices.Min(cycle))
	rot := slices.Concat(cycle[first:], cycle[:first])
	shown := strings.Join(append(rot, rot[0]), " → ")
	return rangeError(decls[rot[0]].baseRange, "Cycle between images",
		fmt.Sprintf("images are built on each other in a cycle: %s (each arrow reads \"is built on\"); one of them must start from a debian or origin block instead.", shown))
}

// order lists images so that a base comes before the images built on it,
// in name order among images that are ready at the same time. Images in a
// cycle or built on an unknown image are left out (and were reported).
func order(decls map[string]*imageDecl) []string {
	children := map[string][]string{}
	var ready []string
	for _, name := range slices.Sorted(maps.Keys(decls)) {
		base := decls[name].img.Base
		if base == nil {
			ready = append(ready, name)
			continue
		}
		children[base.Image] = append(children[base.Image], name)
	}
	var out []string
	for len(ready) > 0 {
		sort.Strings(ready)
		n := ready[0]
		ready = ready[1:]
		out = append(out, n)
		ready = append(ready, children[n]...)
	}
	return out
}

// suggest returns the name closest to s, if it is close enough to be a typo.
func suggest(s string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := levenshtein.Distance(s, n, nil); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}

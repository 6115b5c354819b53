package definition

import (
	"strings"

	"github.com/kiln-project/kiln"
)

// Image returns the named image, or an ENOTFOUND error that lists the
// estate's images and suggests the closest name.
func (e *Estate) Image(name string) (*Image, error) {
	if img, ok := e.Images[name]; ok {
		return img, nil
	}
	if s := suggest(name, e.Order); s != "" {
		return nil, kiln.FieldErrorf(kiln.ENOTFOUND, "image", "the estate %s defines no image %q; did you mean %s?", e.Dir, name, s)
	}
	return nil, kiln.FieldErrorf(kiln.ENOTFOUND, "image", "the estate %s defines no image %q; it defines %s", e.Dir, name, strings.Join(e.Order, ", "))
}

// BuiltOn lists the images whose base is the named image, directly or
// through others, in build order: what to rebuild when it changes.
func (e *Estate) BuiltOn(name string) []string {
	affected := map[string]bool{name: true}
	var out []string
	for _, n := range e.Order { // a base always comes before its images
		if b := e.Images[n].Base; b != nil && affected[b.Image] {
			affected[n] = true
			out = append(out, n)
		}
	}
	return out
}

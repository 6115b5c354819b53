package advisory

import (
	"strings"

	"github.com/kiln-project/kiln"
)

// ParseFixedIn parses image-level fixed-in lists as given to --fixed-in:
// "basic-linux-2,appserver-3 container-node-2". Each argument may hold
// several versions separated by commas or spaces; a flag given several
// times passes several arguments. An image named twice is an error: the
// statement would be ambiguous.
func ParseFixedIn(field string, lists ...string) ([]kiln.VersionRef, error) {
	var out []kiln.VersionRef
	seen := map[string]kiln.VersionRef{}
	for _, l := range lists {
		for _, s := range strings.FieldsFunc(l, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
			ref, err := kiln.ParseVersionRef(field, s)
			if err != nil {
				return nil, err
			}
			if prev, dup := seen[ref.Image]; dup {
				return nil, kiln.FieldErrorf(kiln.EINVALID, field, "image %s is named twice (%s and %s); give one first fixed version per image", ref.Image, prev, ref)
			}
			seen[ref.Image] = ref
			out = append(out, ref)
		}
	}
	if len(out) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, field, "no version given; write the first fixed version of each image, e.g. basic-linux-2,appserver-3")
	}
	return out, nil
}

// Exposed reports whether an instance running version v is exposed to an
// image-level advisory that is fixed in fixedIn: it is when fixedIn names
// v's image with a higher number. fix is that fixed-in version, zero when
// the image is not named (and so not affected).
func Exposed(fixedIn []kiln.VersionRef, v kiln.VersionRef) (exposed bool, fix kiln.VersionRef) {
	for _, f := range fixedIn {
		if f.Image == v.Image {
			return v.Number < f.Number, f
		}
	}
	return false, kiln.VersionRef{}
}

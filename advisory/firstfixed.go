package advisory

import (
	"github.com/kiln-project/kiln"
)

// VersionManifest is one version of an image line with what was installed.
type VersionManifest struct {
	Version kiln.VersionRef
	// Release is the Debian release the version was built from (bookworm).
	Release  string
	Packages []kiln.Package
	Sources  Sources
}

// FirstFixed returns the first version of an image line from which on no
// version is affected by adv: every earlier version is exposed, which is
// what an image-level fixed-in statement says. versions are of one image
// line in increasing number order. ok is false when the newest version is
// still affected (no version has the fix yet) or versions is empty. When no
// version was ever affected, the first version is returned.
func FirstFixed(adv *kiln.Advisory, versions []VersionManifest) (fixed kiln.VersionRef, ok bool, err error) {
	for i, v := range versions {
		if i > 0 {
			prev := versions[i-1].Version
			if v.Version.Image != prev.Image {
				return kiln.VersionRef{}, false, kiln.FieldErrorf(kiln.EINVALID, "versions", "%s and %s are of different image lines; give the versions of one line", prev, v.Version)
			}
			if v.Version.Number <= prev.Number {
				return kiln.VersionRef{}, false, kiln.FieldErrorf(kiln.EINVALID, "versions", "%s comes after %s; give versions in increasing order", v.Version, prev)
			}
		}
	}
	indexes := map[string]*Index{}
	for i := len(versions) - 1; i >= 0; i-- {
		v := versions[i]
		rel := Release(v.Release)
		ix := indexes[rel]
		if ix == nil {
			if ix, err = NewIndex([]*kiln.Advisory{adv}, rel); err != nil {
				return kiln.VersionRef{}, false, err
			}
			indexes[rel] = ix
		}
		if len(Affected(ix.Match(v.Packages, v.Sources))) > 0 {
			if i == len(versions)-1 {
				return kiln.VersionRef{}, false, nil
			}
			return versions[i+1].Version, true, nil
		}
	}
	if len(versions) == 0 {
		return kiln.VersionRef{}, false, nil
	}
	return versions[0].Version, true, nil
}

package fleet

import (
	"cmp"
	"slices"

	"github.com/kiln-project/kiln"
)

// ConfigRow counts the instances that run one version with one launch
// configuration: "what runs" is both.
type ConfigRow struct {
	Version kiln.VersionRef `json:"version"`
	// ConfigDigest is empty for instances given no configuration.
	ConfigDigest string `json:"config_digest"`
	// ConfigSource is what produced it (of the first instance seen; one
	// digest normally has one source).
	ConfigSource string   `json:"config_source,omitempty"`
	Environments []string `json:"environments"`
	Instances    int      `json:"instances"`
}

// ByConfig groups instances by version and configuration digest, sorted
// by image, version number, then digest.
func ByConfig(insts []*kiln.Instance) []*ConfigRow {
	type key struct {
		v kiln.VersionRef
		d string
	}
	byKey := map[key]*ConfigRow{}
	out := []*ConfigRow{}
	for _, i := range insts {
		k := key{i.Version, i.ConfigDigest}
		r := byKey[k]
		if r == nil {
			r = &ConfigRow{Version: i.Version, ConfigDigest: i.ConfigDigest, ConfigSource: i.ConfigSource}
			byKey[k] = r
			out = append(out, r)
		}
		r.Instances++
		if !slices.Contains(r.Environments, i.Environment) {
			r.Environments = append(r.Environments, i.Environment)
			slices.Sort(r.Environments)
		}
	}
	slices.SortFunc(out, func(a, b *ConfigRow) int {
		return cmp.Or(cmp.Compare(a.Version.Image, b.Version.Image), cmp.Compare(a.Version.Number, b.Version.Number), cmp.Compare(a.ConfigDigest, b.ConfigDigest))
	})
	return out
}

package pipeline

import (
	"context"
	"fmt"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
)

// aptSourceReasons compares the Release file each of img's apt sources
// serves now with the one latest was built from: a new publication (a
// fixed package) is a "packages" reason to build again.
func (c *Checker) aptSourceReasons(ctx context.Context, img *definition.Image, latest *kiln.Version, releases map[string]*debian.Release) ([]Reason, error) {
	recorded := map[string]string{}
	for _, s := range latest.Provenance.Sources {
		if s.Kind == kiln.SourceConfig {
			recorded[s.Ref] = s.Digest
		}
	}
	var out []Reason
	for _, s := range img.AptSources {
		key := s.URL + " " + s.Suite
		rel, ok := releases[key]
		if !ok {
			var err error
			if rel, err = debian.FetchRelease(ctx, c.HTTP, s.URL, s.Suite); err != nil {
				return nil, fmt.Errorf("apt_source %q: %w", s.Name, err)
			}
			releases[key] = rel
		}
		was, ok := recorded[build.AptSourceRef(s)]
		switch {
		case !ok:
			out = append(out, Reason{"source", fmt.Sprintf("apt source %s is new since %s", s.Name, latest.Name)})
		case was != rel.Digest:
			out = append(out, Reason{"packages", fmt.Sprintf("apt source %s (%s %s) published a new Release since %s (now dated %s)",
				s.Name, s.URL, s.Suite, latest.Name, rel.Date.UTC().Format("2006-01-02T15:04:05Z"))})
		}
	}
	return out, nil
}

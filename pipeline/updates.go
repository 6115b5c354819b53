package pipeline

import (
	"context"
	"fmt"
	"strings"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
)

// FormatUpdates renders "openssl 3.0.11 → 3.0.13, …", at most n entries.
func FormatUpdates(ups []debian.PackageUpdate, n int) string {
	var parts []string
	for i, u := range ups {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(ups)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %s → %s", u.Name, u.From, u.To))
	}
	return strings.Join(parts, ", ")
}

// updates fetches (or reads from the cache, by Release digest) the
// mirror's package index and compares the manifest with it.
func (c *Checker) updates(ctx context.Context, d *definition.Debian, rel *debian.Release, pkgs []kiln.Package) ([]debian.PackageUpdate, error) {
	comps := d.Components
	if len(comps) == 0 {
		comps = definition.DefaultComponents
	}
	ix, err := debian.FetchIndex(ctx, c.HTTP, c.CacheDir, rel, comps)
	if err != nil {
		return nil, err
	}
	return ix.Updates(pkgs), nil
}

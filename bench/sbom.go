package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sbom"
)

// SBOM is SBOM generation per version in both formats, for an image of
// about 130 packages (a basic Debian image; target 100 ms) and a
// synthetic 1,000-package manifest.
func SBOM() Measure {
	return Measure{
		ID: "sbom", Title: "SBOM generation per version", Quick: true,
		Run: func(ctx context.Context, _ *Env) ([]Figure, error) {
			var figs []Figure
			for _, n := range []int{130, 1000} {
				v := synthVersion(n)
				for _, f := range sbom.Formats {
					d, err := meanOf(ctx, 500*time.Millisecond, func() error {
						_, _, err := sbom.Generate(v, f, sbom.Options{})
						return err
					})
					if err != nil {
						return figs, err
					}
					fig := Millis(fmt.Sprintf("sbom.%s.%d", f, n), fmt.Sprintf("SBOM, %s, %d packages", f, n), d)
					if n == 130 {
						fig = fig.AtMost(100)
					}
					figs = append(figs, fig)
				}
			}
			return figs, nil
		},
	}
}

// synthVersion is a version with n packages, a base and kiln's inputs.
func synthVersion(n int) *kiln.Version {
	pkgs := make([]kiln.Package, n)
	for i := range pkgs {
		pkgs[i] = kiln.Package{Name: fmt.Sprintf("pkg%04d", i), Version: fmt.Sprintf("%d.%d-%d", i%7, i%11, i%3+1),
			Architecture: "amd64", Source: fmt.Sprintf("src%d", i/3)}
	}
	return &kiln.Version{
		Image: "appserver", Number: 3, Name: "appserver-3", Status: kiln.StatusReady,
		CreatedAt: time.Date(2026, 11, 30, 10, 4, 5, 0, time.UTC),
		Provenance: kiln.Provenance{
			Method: kiln.MethodFresh,
			Base:   &kiln.VersionRef{Image: "basic-linux", Number: 2},
			Sources: []kiln.Source{
				{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian", Digest: "sha256:" + strings.Repeat("1", 64)},
				{Kind: kiln.SourceDefinition, Ref: "images/appserver.kiln.hcl", Digest: "sha256:" + strings.Repeat("2", 64)},
			},
			Packages: pkgs,
			Artifact: &kiln.Artifact{Ref: "local:sha256:ab", Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1 << 20},
		},
	}
}

// meanOf runs f at least five times and until at least d has passed, and
// returns the mean time of one run.
func meanOf(ctx context.Context, d time.Duration, f func() error) (time.Duration, error) {
	t0 := time.Now()
	n := 0
	for n < 5 || time.Since(t0) < d {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := f(); err != nil {
			return 0, err
		}
		n++
	}
	return time.Since(t0) / time.Duration(n), nil
}

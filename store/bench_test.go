package store

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/kiln-project/kiln"
)

// Benchmarks run on both backends: go test -run '^$' -bench . ./store/
// (PostgreSQL needs KILN_TEST_POSTGRES; see scripts/postgres-test.sh).

func eachBackendBench(b *testing.B, fn func(b *testing.B, e *env)) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) { fn(b, newEnv(b, kind)) })
	}
}

// benchVersion is a version as a build records it: three sources and the
// package list of a small server image.
func benchVersion(image string, packages int) *kiln.NewVersion {
	nv := &kiln.NewVersion{
		Image: image,
		Tags:  kiln.Tags{"team": "payments", "env": "prod"},
		Provenance: kiln.Provenance{
			Sources: []kiln.Source{
				{Kind: kiln.SourceOrigin, Ref: "debian:bookworm@deb.debian.org", Digest: digestA},
				{Kind: kiln.SourceDefinition, Ref: "images/" + image + ".hcl", Digest: digestB},
				{Kind: kiln.SourceConfig, Ref: "git:4b825dc642cb6eb9a060e54bf8d69288fbee4904"},
			},
			Artifact: &kiln.Artifact{Ref: "local:" + digestB, Digest: digestB, Size: 187_000_000},
			BuiltBy:  "worker-1",
		},
	}
	for i := range packages {
		nv.Provenance.Packages = append(nv.Provenance.Packages,
			kiln.Package{Name: "package-" + strconv.Itoa(i), Version: "1." + strconv.Itoa(i) + "-1+deb12u1", Architecture: "amd64"})
	}
	return nv
}

func BenchmarkCreateVersion(b *testing.B) {
	eachBackendBench(b, func(b *testing.B, e *env) {
		for _, packages := range []int{0, 250} {
			b.Run(fmt.Sprintf("packages=%d", packages), func(b *testing.B) {
				image := fmt.Sprintf("bench-%d", packages)
				if _, err := e.FindImage(context.Background(), image); err != nil {
					mkImage(b, e.DB, image)
				}
				nv := benchVersion(image, packages)
				b.ResetTimer()
				for b.Loop() {
					if _, err := e.CreateVersion(context.Background(), nv); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	})
}

// seed records n versions of image, 1000 per transaction through the
// store's own createVersion and setStatus: every third is tested, every
// tenth ready, every seventh failed; every other one has team=web.
func seed(b *testing.B, e *env, image string, n int) {
	b.Helper()
	ctx := context.Background()
	mkImage(b, e.DB, image)
	for start := 0; start < n; start += 1000 {
		err := e.write(ctx, func(tx *tx) error {
			for i := start; i < min(start+1000, n); i++ {
				nv := benchVersion(image, 20)
				if i%2 == 0 {
					nv.Tags["team"] = "web"
				}
				if err := nv.Validate(); err != nil {
					return err
				}
				v, err := createVersion(ctx, tx, nv)
				if err != nil {
					return err
				}
				var moves []kiln.Status
				switch {
				case v.Number%10 == 0:
					moves = []kiln.Status{kiln.StatusTested, kiln.StatusReady}
				case v.Number%7 == 0:
					moves = []kiln.Status{kiln.StatusFailed}
				case v.Number%3 == 0:
					moves = []kiln.Status{kiln.StatusTested}
				}
				for _, s := range moves {
					if _, err := setStatus(ctx, tx, v.Ref(), s, "seed"); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkListVersions(b *testing.B) {
	const n = 10_000
	eachBackendBench(b, func(b *testing.B, e *env) {
		seed(b, e, "appserver", n)
		for _, tc := range []struct {
			name string
			f    kiln.VersionFilter
			want int
		}{
			{"all-10000", kiln.VersionFilter{Image: "appserver"}, n},
			{"page-50", kiln.VersionFilter{Image: "appserver", Limit: 50, Offset: 5000}, 50},
			{"tag-and-min-status-page-50", kiln.VersionFilter{Tags: kiln.Tags{"team": "web"}, MinStatus: kiln.StatusTested, Limit: 50}, 50},
		} {
			b.Run(tc.name, func(b *testing.B) {
				for b.Loop() {
					vs, _, err := e.ListVersions(context.Background(), tc.f)
					if err != nil {
						b.Fatal(err)
					}
					if len(vs) != tc.want {
						b.Fatalf("listed %d versions, want %d", len(vs), tc.want)
					}
				}
			})
		}
	})
}

func BenchmarkLatestVersion(b *testing.B) {
	const n = 10_000
	eachBackendBench(b, func(b *testing.B, e *env) {
		seed(b, e, "appserver", n)
		for _, min := range []kiln.Status{kiln.StatusReady, kiln.StatusTested} {
			b.Run("min="+string(min), func(b *testing.B) {
				for b.Loop() {
					v, err := e.LatestVersion(context.Background(), "appserver", min)
					if err != nil {
						b.Fatal(err)
					}
					if v.Number != n {
						b.Fatalf("latest %s is %s, want appserver-%d", min, v.Name, n)
					}
				}
			})
		}
	})
}

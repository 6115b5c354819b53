package advisory

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/kiln-project/kiln"
)

// benchData is a synthetic estate: nAdv advisories over a universe of
// source packages, and nManifests manifests of nPkgs packages each.
type benchData struct {
	advs      []*kiln.Advisory
	manifests [][]kiln.Package
	sources   Sources
}

func makeBenchData(nAdv, nManifests, nPkgs int) *benchData {
	r := rand.New(rand.NewPCG(7, 7))
	const universe = 3000
	names := make([]string, universe)
	versions := make([][]string, universe) // a few versions per package, in order
	for i := range names {
		names[i] = fmt.Sprintf("pkg%04d", i)
		base := fmt.Sprintf("%d.%d.%d", r.IntN(5), r.IntN(20), r.IntN(30))
		versions[i] = []string{base + "-1", base + "-2~deb12u1", base + "-2~deb12u2", base + "-2+deb12u3", "1:" + base + "-3"}
	}
	d := &benchData{sources: Sources{}}
	for i := range nAdv {
		a := &kiln.Advisory{ID: fmt.Sprintf("DSA-%d-1", 6000+i), Source: kiln.AdvisoryOSV}
		for range 1 + r.IntN(3) {
			p := r.IntN(universe)
			ap := kiln.AffectedPackage{Ecosystem: "Debian:12", Release: "bookworm", Name: names[p]}
			if r.IntN(5) == 0 {
				ap.Status = kiln.AffectedOpen
			} else {
				ap.Status, ap.Fixed = kiln.AffectedFixed, versions[p][1+r.IntN(4)]
			}
			a.Packages = append(a.Packages, ap)
			// Some advisories also cover another release, which the index drops.
			a.Packages = append(a.Packages, kiln.AffectedPackage{Ecosystem: "Debian:11", Release: "bullseye", Name: names[p], Status: kiln.AffectedOpen})
		}
		d.advs = append(d.advs, a)
	}
	for i := range universe / 3 { // a third of the binaries are named after another source
		d.sources["lib"+names[i]] = SourceRef{Name: names[i]}
	}
	for range nManifests {
		m := make([]kiln.Package, nPkgs)
		for j := range m {
			p := r.IntN(universe)
			name := names[p]
			if p < universe/3 {
				name = "lib" + name
			}
			m[j] = kiln.Package{Name: name, Version: versions[p][r.IntN(5)], Architecture: "amd64"}
		}
		d.manifests = append(d.manifests, m)
	}
	return d
}

var benchSink int

// BenchmarkMatchEstate matches 500 advisories against 10,000 manifests of
// 300 packages each: one op is the whole estate, index build included.
func BenchmarkMatchEstate(b *testing.B) {
	d := makeBenchData(500, 10000, 300)
	b.ResetTimer()
	b.ReportAllocs()
	for b.Loop() {
		ix, err := NewIndex(d.advs, "bookworm")
		if err != nil {
			b.Fatal(err)
		}
		findings, affected := 0, 0
		for _, m := range d.manifests {
			fs := ix.Match(m, d.sources)
			findings += len(fs)
			for _, f := range fs {
				if f.Affected {
					affected++
				}
			}
		}
		benchSink = findings + affected
		b.ReportMetric(float64(findings), "findings/op")
		b.ReportMetric(float64(affected), "affected/op")
	}
}

// BenchmarkMatchManifest is one manifest of 300 packages against a
// prepared index of 500 advisories.
func BenchmarkMatchManifest(b *testing.B) {
	d := makeBenchData(500, 100, 300)
	ix, err := NewIndex(d.advs, "bookworm")
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchSink += len(ix.Match(d.manifests[i%len(d.manifests)], d.sources))
		i++
	}
}

// BenchmarkNewIndex prepares 500 advisories.
func BenchmarkNewIndex(b *testing.B) {
	d := makeBenchData(500, 0, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewIndex(d.advs, "bookworm"); err != nil {
			b.Fatal(err)
		}
	}
}

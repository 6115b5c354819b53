package advisory

import (
	"fmt"
	"strings"
	"testing"
)

// syntheticTracker makes a tracker export of pkgs packages with 8 CVEs of
// 5 releases each (about 5.7 kB per package).
func syntheticTracker(pkgs int) []byte {
	var b strings.Builder
	b.WriteString("{")
	for p := range pkgs {
		if p > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%q: {", fmt.Sprintf("pkg%d", p))
		for c := range 8 {
			if c > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"CVE-2099-%d": {"description": "A flaw that goes on for a while, and a while more.", "scope": "remote", "releases": {`, p*10+c)
			for r, rel := range []string{"bookworm", "bullseye", "buster", "sid", "trixie"} {
				if r > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `%q: {"status": "resolved", "repositories": {%q: "1.2.3-4"}, "fixed_version": "1.2.3-%d", "urgency": "low**"}`, rel, rel, r+1)
			}
			b.WriteString("}}")
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return []byte(b.String())
}

// BenchmarkParseDebianTracker reads a 5.7 MB export (1,000 packages,
// 8,000 CVEs, 40,000 release entries).
func BenchmarkParseDebianTracker(b *testing.B) {
	data := syntheticTracker(1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		advs, err := ParseDebianTracker("synthetic.json", data)
		if err != nil || len(advs) != 8000 {
			b.Fatalf("%d advisories, %v", len(advs), err)
		}
	}
}

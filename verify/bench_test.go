package verify

import (
	"context"
	"os"
	"strings"
	"testing"
)

func BenchmarkParse(b *testing.B) {
	data, err := os.ReadFile("testdata/sample.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse("testdata/sample.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatterns measures goss line patterns over a 1 MiB file.
func BenchmarkPatterns(b *testing.B) {
	text := strings.Repeat("a line of some configuration file = value\n", 1<<20/43)
	m := &Matcher{Op: opPatterns, Patterns: []string{"value", "!absent", "/^a line.*=/", "missing"}}
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if ok, err := m.Match(text); ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkProbeLocal probes files, accounts and the dpkg database of this
// host (no commands or network).
func BenchmarkProbeLocal(b *testing.B) {
	suite, err := Parse("b.yaml", []byte(`
file:
  /etc/passwd: {exists: true, mode: "0644", owner: root, contents: ["root:"]}
user:
  root: {exists: true, uid: 0, groups: [root]}
package:
  dpkg: {installed: true}
kernel-param:
  kernel.ostype: {value: Linux}
`))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if rep := Probe(context.Background(), suite); !rep.Passed() {
			b.Fatalf("%+v", rep.Results)
		}
	}
}

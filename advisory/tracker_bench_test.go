package advisory

import (
	"fmt"
	"io"
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

// BenchmarkReadDebianTrackerStream reads the same export as a stream that
// is never whole in memory: the reader holds one source package at a time,
// so allocations grow with the advisories returned, not with the file.
func BenchmarkReadDebianTrackerStream(b *testing.B) {
	data := syntheticTracker(1000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		advs, err := ReadDebianTracker("synthetic.json", &chunked{data: data, n: 32 << 10})
		if err != nil || len(advs) != 8000 {
			b.Fatalf("%d advisories, %v", len(advs), err)
		}
	}
}

// chunked hands out data n bytes per Read, as a network body does.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}

// TestReadDebianTrackerBoundedBuffer checks that the stream reader keeps
// only about one package of input: 2,000 packages (11 MB) never make it
// hold more than a few of them.
func TestReadDebianTrackerBoundedBuffer(t *testing.T) {
	data := syntheticTracker(2000)
	lr := newLineReader(&chunked{data: data, n: 32 << 10})
	peak := 0
	probe := &probeReader{r: lr, after: func() { peak = max(peak, len(lr.buf)) }}
	if _, err := readDebianTracker("synthetic.json", probe, lr); err != nil {
		t.Fatal(err)
	}
	if limit := 64 << 10; peak > limit {
		t.Fatalf("the reader held %d bytes of an %d-byte input at once; want at most %d (one package is about 5.7 kB)", peak, len(data), limit)
	}
}

type probeReader struct {
	r     io.Reader
	after func()
}

func (p *probeReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.after()
	return n, err
}

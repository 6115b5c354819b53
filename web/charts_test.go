package web

import (
	"fmt"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/web/chart"
)

// TestMergeThin: runs of two or more slivers become one segment with their
// sum and patterns; a lone sliver and wide segments stay.
func TestMergeThin(t *testing.T) {
	segs := []chart.Segment{
		{Key: "a-1", Value: 1}, {Key: "a-2", Value: 1, Patterns: []chart.Pattern{chart.Hatch}}, {Key: "a-3", Value: 1},
		{Key: "a-4", Value: 500},
		{Key: "a-5", Value: 1},
		{Key: "a-6", Value: 496},
	}
	got := mergeThin(segs, 1000, "a", "prod")
	var keys []string
	for _, g := range got {
		keys = append(keys, g.Key)
	}
	if strings.Join(keys, " ") != "a-1…a-3 a-4 a-5 a-6" {
		t.Fatalf("segments %v", keys)
	}
	m := got[0]
	if m.Value != 3 || len(m.Patterns) != 1 || m.Href != "/ui/fleet/instances?env=prod&image=a" || !strings.Contains(m.Tip, "3 versions") {
		t.Errorf("merged segment %+v", m)
	}
}

// BenchmarkSpreadChart draws the version spread of 100 image lines with
// 100 versions in use each (the 1,000,000-instance synthetic fleet).
func BenchmarkSpreadChart(b *testing.B) {
	var rows []*kiln.ReportRow
	for i := range 100 {
		for n := 1; n <= 100; n++ {
			img := fmt.Sprintf("img-%03d", i)
			rows = append(rows, &kiln.ReportRow{Image: img, Number: n, Name: fmt.Sprintf("%s-%d", img, n), Status: kiln.StatusTested,
				Instances: 1 + n*n/10, OverAge: n % 3})
		}
	}
	for b.Loop() {
		if h := spreadChart(rows, "", nil, ""); len(h) == 0 {
			b.Fatal("no chart")
		}
	}
}

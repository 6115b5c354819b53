package chart

import (
	"encoding/xml"
	"flag"
	"html/template"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// node is a parsed SVG element.
type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []node     `xml:",any"`
	Text     string     `xml:",chardata"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

func (n node) float(t *testing.T, name string) float64 {
	t.Helper()
	f, err := strconv.ParseFloat(n.attr(name), 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.XMLName.Local, name, n.attr(name), err)
	}
	return f
}

// all returns every element below n (n included) for which keep is true.
func (n node) all(keep func(node) bool) []node {
	var out []node
	if keep(n) {
		out = append(out, n)
	}
	for _, c := range n.Children {
		out = append(out, c.all(keep)...)
	}
	return out
}

func hasClass(n node, c string) bool {
	for _, f := range strings.Fields(n.attr("class")) {
		if f == c {
			return true
		}
	}
	return false
}

func parse(t *testing.T, h template.HTML) node {
	t.Helper()
	var n node
	if err := xml.Unmarshal([]byte(h), &n); err != nil {
		t.Fatalf("the chart is not well-formed XML: %v\n%s", err, h)
	}
	return n
}

func near(a, b float64) bool { return math.Abs(a-b) < 0.11 }

// golden compares h with testdata/name.svg, or rewrites it with -update.
func golden(t *testing.T, name string, h template.HTML) {
	t.Helper()
	path := filepath.Join("testdata", name+".svg")
	if *update {
		if err := os.WriteFile(path, []byte(string(h)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./web/chart -update to create it)", err)
	}
	if string(want) != string(h)+"\n" {
		t.Errorf("%s differs from the golden file; look at both and run go test ./web/chart -update if the change is meant\ngot:\n%s", path, h)
	}
}

// cspSafe fails when markup holds something the dashboard's CSP refuses
// or that runs code.
func cspSafe(t *testing.T, h template.HTML) {
	t.Helper()
	n := parse(t, h)
	for _, e := range n.all(func(node) bool { return true }) {
		switch e.XMLName.Local {
		case "script", "style", "foreignObject":
			t.Errorf("chart contains a <%s> element", e.XMLName.Local)
		}
		for _, a := range e.Attrs {
			if a.Name.Local == "style" || strings.HasPrefix(a.Name.Local, "on") {
				t.Errorf("<%s> has a %s attribute", e.XMLName.Local, a.Name.Local)
			}
			if a.Name.Local == "href" && strings.HasPrefix(strings.ToLower(a.Value), "javascript:") {
				t.Errorf("<%s> links to script", e.XMLName.Local)
			}
		}
	}
}

func TestNiceMax(t *testing.T) {
	for _, c := range []struct{ v, top, step float64 }{
		{0, 1, 0.25}, {1, 1, 1}, {3, 3, 1}, {4, 5, 1}, {7, 10, 2.5}, {10, 10, 2.5},
		{55, 100, 25}, {130, 200, 50}, {240, 250, 50}, {1_000_000, 1_000_000, 250_000}, {0.3, 0.5, 0.1},
	} {
		top, step := niceMax(c.v)
		if !near(top, c.top) || !near(step, c.step) {
			t.Errorf("niceMax(%g) = %g, %g; want %g, %g", c.v, top, step, c.top, c.step)
		}
	}
}

func TestFormatNum(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 12: "12", 1234: "1,234", 1_000_000: "1,000,000", -4321: "-4,321", 2.5: "2.50"} {
		if got := formatNum(in); got != want {
			t.Errorf("formatNum(%g) = %q, want %q", in, got, want)
		}
	}
}

func TestTimeTicks(t *testing.T) {
	day := 24 * time.Hour
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	ts, layout := timeTicks(from, from.Add(90*day))
	if layout != "Jan 2" || len(ts) == 0 || len(ts) > 8 {
		t.Fatalf("90 days: %d ticks, layout %q", len(ts), layout)
	}
	for _, tk := range ts {
		if tk.Weekday() != time.Monday || tk.Before(from) {
			t.Errorf("90 days: tick %s is not a Monday in range", tk)
		}
	}
	ts, layout = timeTicks(from.Add(10*time.Second), from.Add(3*time.Minute))
	if layout != "15:04:05" || len(ts) < 4 || len(ts) > 8 || ts[0].Second()%30 != 0 {
		t.Errorf("3 minutes: ticks %v, layout %q", ts, layout)
	}
}

func spread() StackedBars {
	return StackedBars{ID: "spread", Title: "Versions in use", Desc: "Per image, instances on each version.", Share: true,
		Legend: []LegendItem{{Label: "exposed", Pattern: Hatch}, {Label: "over age", Pattern: Dots}},
		Bars: []Bar{
			{Label: "basic-linux", Href: "/ui/images/basic-linux", Segments: []Segment{
				{Label: "1", Value: 1, Class: 0, Key: "basic-linux-1", Href: "/ui/fleet/instances?image=basic-linux&version=1", Tip: "basic-linux-1: 1", Patterns: []Pattern{Hatch, Dots}},
				{Label: "2", Value: 3, Class: 1, Key: "basic-linux-2", Href: "/ui/fleet/instances?image=basic-linux&version=2", Tip: "basic-linux-2: 3"},
			}},
			{Label: "a <very> long & quoted \"image\" name", Segments: []Segment{{Label: "7", Value: 5, Class: 2, Key: "x-7"}}},
		}}
}

// TestStackedBarsGeometry: in share mode every bar spans the plot, each
// segment as wide as its share, left to right in order, marked with its
// patterns, linked, and the total written after it.
func TestStackedBarsGeometry(t *testing.T) {
	h := spread().SVG()
	cspSafe(t, h)
	n := parse(t, h)
	if n.attr("role") != "group" || n.attr("id") != "spread" {
		t.Errorf("svg role %q id %q; a chart with links is a group", n.attr("role"), n.attr("id"))
	}
	segs := n.all(func(e node) bool { return hasClass(e, "seg") })
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	plot := float64(Width) - barTotalWidth - barLabelWidth
	want := []struct {
		key    string
		x, w   float64
		values string
	}{{"basic-linux-1", barLabelWidth, plot / 4, "1"}, {"basic-linux-2", barLabelWidth + plot/4, plot * 3 / 4, "3"}, {"x-7", barLabelWidth, plot, "5"}}
	for i, w := range want {
		s := segs[i]
		if s.attr("data-key") != w.key || s.attr("data-value") != w.values || !near(s.float(t, "x"), w.x) || !near(s.float(t, "width"), w.w) {
			t.Errorf("segment %d: key %s value %s x %s width %s; want %s %s %g %g", i, s.attr("data-key"), s.attr("data-value"), s.attr("x"), s.attr("width"), w.key, w.values, w.x, w.w)
		}
	}
	links := n.all(func(e node) bool { return e.XMLName.Local == "a" })
	if len(links) != 3 || links[1].attr("href") != "/ui/fleet/instances?image=basic-linux&version=1" {
		t.Errorf("links %+v", links)
	}
	over := n.all(func(e node) bool { return hasClass(e, "pattern") && e.attr("fill") == "url(#spread-hatch)" })
	if len(over) != 2 { // the legend's swatch and basic-linux-1
		t.Errorf("%d hatched shapes, want 2", len(over))
	}
	if !strings.Contains(string(h), "a &lt;very&gt; long &amp; q") {
		t.Errorf("the long label is not escaped and cut:\n%s", h)
	}
	golden(t, "stacked-share", h)

	abs := spread()
	abs.Share, abs.Unit, abs.ID = false, "instances", "abs"
	h = abs.SVG()
	n = parse(t, h)
	segs = n.all(func(e node) bool { return hasClass(e, "seg") })
	// The scale runs to 5 (the longest bar): 1 of 5 is a fifth.
	if !near(segs[0].float(t, "width"), plot/5) || !near(segs[2].float(t, "width"), plot) {
		t.Errorf("absolute widths %s, %s; want %g, %g", segs[0].attr("width"), segs[2].attr("width"), plot/5, plot)
	}
	golden(t, "stacked-absolute", h)
}

// TestHistogramGeometry: bins sit side by side on one scale, heights
// proportional to counts, the threshold line where its value is, and the
// bins past it hatched.
func TestHistogramGeometry(t *testing.T) {
	h := Histogram{ID: "age", Title: "Age", Desc: "Instances by age.", XLabel: "days", YLabel: "instances",
		Threshold: 90, ThresholdLabel: "limit 90d · 3 past it",
		Bins: []Bin{{0, 30, 4, "0–30 days", ""}, {30, 60, 0, "30–60 days", ""}, {60, 90, 2, "60–90 days", ""}, {90, 120, 1, "90–120 days", "/ui/x"}, {120, 150, 2, "120–150 days", ""}}}.SVG()
	cspSafe(t, h)
	n := parse(t, h)
	bins := n.all(func(e node) bool { return hasClass(e, "bin") })
	if len(bins) != 5 {
		t.Fatalf("%d bins, want 5", len(bins))
	}
	x0, x1 := histLeft, float64(Width)-histRight
	colW := (x1 - x0) / 5
	y0 := histHeight - histBottom
	top, _ := niceMax(4)
	unit := (y0 - histTop) / top
	for i, b := range bins {
		count, _ := strconv.Atoi(b.attr("data-value"))
		if !near(b.float(t, "x"), x0+float64(i)*colW+1) || !near(b.float(t, "width"), colW-2) ||
			!near(b.float(t, "height"), float64(count)*unit) || !near(b.float(t, "y")+b.float(t, "height"), y0) {
			t.Errorf("bin %d: x %s w %s y %s h %s", i, b.attr("x"), b.attr("width"), b.attr("y"), b.attr("height"))
		}
		if over := hasClass(b, "over"); over != (i >= 3) {
			t.Errorf("bin %d: over=%v", i, over)
		}
	}
	line := n.all(func(e node) bool { return hasClass(e, "threshold-line") })
	if len(line) != 1 || !near(line[0].float(t, "x1"), x0+3*colW) {
		t.Errorf("threshold line %+v, want at x %g", line, x0+3*colW)
	}
	if hatched := n.all(func(e node) bool { return e.attr("fill") == "url(#age-hatch)" }); len(hatched) != 2 {
		t.Errorf("%d hatched bins, want 2", len(hatched))
	}
	golden(t, "histogram", h)
}

// TestLineChartGeometry: points map time and value linearly into the plot;
// each series says its last value; markers land at their time.
func TestLineChartGeometry(t *testing.T) {
	day := 24 * time.Hour
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	c := LineChart{ID: "trend", Title: "On latest", Desc: "Per environment.", YLabel: "instances", From: t0, To: t0.Add(10 * day),
		Series: []Series{
			{Name: "prod", Class: 0, Points: []Point{{t0, 10}, {t0.Add(5 * day), 20}, {t0.Add(10 * day), 40}}},
			{Name: "dev", Class: 1, Points: []Point{{t0.Add(10 * day), 40}}},
		},
		Markers: []Marker{{X: t0.Add(5 * day), Label: "rollback", Strong: true}, {X: t0.Add(20 * day), Label: "outside"}}}
	h := c.SVG()
	cspSafe(t, h)
	n := parse(t, h)
	series := n.all(func(e node) bool { return hasClass(e, "series") })
	if len(series) != 2 || series[0].attr("data-last") != "40" || series[0].attr("data-series") != "prod" {
		t.Fatalf("series %+v", series)
	}
	f := newTimeFrame(t0, t0.Add(10*day), 0, 40)
	path := series[0].all(func(e node) bool { return e.XMLName.Local == "path" })[0].attr("d")
	want := "M" + num(f.x0) + " " + num(f.y(10)) + " L" + num((f.x0+f.x1)/2) + " " + num(f.y(20)) + " L" + num(f.x1) + " " + num(f.y(40))
	if path != want {
		t.Errorf("path %q, want %q", path, want)
	}
	if dash := series[1].all(func(e node) bool { return e.XMLName.Local == "path" })[0].attr("stroke-dasharray"); dash == "" {
		t.Error("the second series is not dashed; lines must differ by more than colour")
	}
	marks := n.all(func(e node) bool { return hasClass(e, "marker-line") })
	if len(marks) != 1 || !near(marks[0].float(t, "x1"), (f.x0+f.x1)/2) {
		t.Errorf("markers %+v; want one at the middle", marks)
	}
	golden(t, "line", h)
}

// TestColumnsGeometry: parts stack from the baseline, each column as wide
// as its span.
func TestColumnsGeometry(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	c := Columns{ID: "health", Title: "Health checks", Desc: "Passed and failed.", From: t0, To: t0.Add(4 * time.Minute),
		Legend: []LegendItem{{Label: "passed", Class: 2}, {Label: "failed", Pattern: Hatch}},
		Columns: []Column{
			{From: t0, To: t0.Add(time.Minute), Parts: []Segment{{Value: 3, Class: 2, Key: "passed"}, {Value: 1, Class: 5, Key: "failed", Patterns: []Pattern{Hatch}}}},
			{From: t0.Add(2 * time.Minute), To: t0.Add(3 * time.Minute), Parts: []Segment{{Value: 4, Class: 2, Key: "passed"}}},
		}}
	h := c.SVG()
	cspSafe(t, h)
	n := parse(t, h)
	cols := n.all(func(e node) bool { return hasClass(e, "col") })
	if len(cols) != 3 {
		t.Fatalf("%d column parts, want 3", len(cols))
	}
	f := newTimeFrame(t0, t0.Add(4*time.Minute), 0, 4)
	if !near(cols[0].float(t, "y")+cols[0].float(t, "height"), f.y0) || !near(cols[1].float(t, "y")+cols[1].float(t, "height"), cols[0].float(t, "y")) ||
		!near(cols[1].float(t, "y"), f.y(4)) || !near(cols[2].float(t, "x"), f.x(t0.Add(2*time.Minute))+0.5) {
		t.Errorf("columns %+v", cols)
	}
	golden(t, "columns", h)
}

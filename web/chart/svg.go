package chart

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Width is the width of every chart's coordinate system; the stylesheet
// scales the picture to the page.
const Width = 960

// Colours is how many palette classes (c0…c7) the stylesheet defines;
// class n is used as n mod Colours.
const Colours = 8

// Pattern is a texture laid over a shape, so that what it marks does not
// depend on telling colours apart.
type Pattern string

// The patterns every chart defines.
const (
	// Hatch: diagonal lines.
	Hatch Pattern = "hatch"
	// Dots: a grid of dots.
	Dots Pattern = "dots"
)

// LegendItem explains a colour class or a pattern.
type LegendItem struct {
	Label string
	// Class is the palette class of the swatch; ignored with Pattern.
	Class   int
	Pattern Pattern
}

// svg writes one chart's markup; every text and attribute value goes
// through esc.
type svg struct {
	b  strings.Builder
	id string
}

func esc(s string) string { return html.EscapeString(s) }

// num writes a coordinate with at most one decimal.
func num(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		f = 0
	}
	r := math.Round(f * 10)
	if r == math.Trunc(r/10)*10 && math.Abs(r) < 1e15 {
		if r == 0 {
			return "0"
		}
		return strconv.FormatInt(int64(r/10), 10)
	}
	return strconv.FormatFloat(r/10, 'f', 1, 64)
}

// open starts the svg element. role is "img" for a picture without links
// and "group" for one whose parts are links, so that those stay reachable.
func (w *svg) open(id, class, title, desc string, height float64, links bool) {
	w.id = id
	role := "img"
	if links {
		role = "group"
	}
	fmt.Fprintf(&w.b, `<svg xmlns="http://www.w3.org/2000/svg" id="%s" class="chart %s" viewBox="0 0 %d %s" width="%d" height="%s" role="%s" aria-labelledby="%s-title %s-desc">`,
		esc(id), esc(class), Width, num(height), Width, num(height), role, esc(id), esc(id))
	fmt.Fprintf(&w.b, `<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, esc(id), esc(title), esc(id), esc(desc))
	fmt.Fprintf(&w.b, `<defs><pattern id="%s-hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="6" height="6" fill="none"/><line x1="0" y1="0" x2="0" y2="6" class="pattern-line" stroke-width="2.5"/></pattern>`, esc(id))
	fmt.Fprintf(&w.b, `<pattern id="%s-dots" width="6" height="6" patternUnits="userSpaceOnUse"><circle cx="3" cy="3" r="1.4" class="pattern-dot"/></pattern></defs>`, esc(id))
}

func (w *svg) close() template.HTML {
	w.b.WriteString(`</svg>`)
	return template.HTML(w.b.String()) //nolint:gosec // every value written went through esc
}

func (w *svg) printf(format string, args ...any) { fmt.Fprintf(&w.b, format, args...) }

// The writers below append directly rather than through fmt: a version
// spread of a large fleet has thousands of shapes.

// attr appends name="value", value escaped.
func (w *svg) attr(name, value string) {
	w.b.WriteByte(' ')
	w.b.WriteString(name)
	w.b.WriteString(`="`)
	w.b.WriteString(esc(value))
	w.b.WriteByte('"')
}

// coord appends name="f", f with at most one decimal.
func (w *svg) coord(name string, f float64) {
	w.b.WriteByte(' ')
	w.b.WriteString(name)
	w.b.WriteString(`="`)
	w.b.WriteString(num(f))
	w.b.WriteByte('"')
}

func (w *svg) box(x, y, wd, ht float64) {
	w.coord("x", x)
	w.coord("y", y)
	w.coord("width", max(wd, 0))
	w.coord("height", max(ht, 0))
}

// rect writes a rectangle; class and the optional tooltip and data
// attributes (name, value pairs) describe it.
func (w *svg) rect(x, y, wd, ht float64, class, tip string, data ...string) {
	w.b.WriteString(`<rect`)
	w.box(x, y, wd, ht)
	w.attr("class", class)
	for i := 0; i+1 < len(data); i += 2 {
		w.attr("data-"+data[i], data[i+1])
	}
	if tip == "" {
		w.b.WriteString(`/>`)
		return
	}
	w.b.WriteString(`><title>`)
	w.b.WriteString(esc(tip))
	w.b.WriteString(`</title></rect>`)
}

// overlay lays pattern p over a rectangle.
func (w *svg) overlay(x, y, wd, ht float64, p Pattern) {
	w.b.WriteString(`<rect`)
	w.box(x, y, wd, ht)
	w.attr("fill", "url(#"+w.id+"-"+string(p)+")")
	w.attr("class", "pattern "+string(p))
	w.b.WriteString(`/>`)
}

// text writes a label; anchor is start, middle or end.
func (w *svg) text(x, y float64, anchor, class, s string) {
	w.b.WriteString(`<text`)
	w.coord("x", x)
	w.coord("y", y)
	w.attr("text-anchor", anchor)
	w.attr("class", class)
	w.b.WriteByte('>')
	w.b.WriteString(esc(s))
	w.b.WriteString(`</text>`)
}

func (w *svg) line(x1, y1, x2, y2 float64, class string) {
	w.printf(`<line x1="%s" y1="%s" x2="%s" y2="%s" class="%s"/>`, num(x1), num(y1), num(x2), num(y2), esc(class))
}

// legend writes the items in a row at y, from x, and returns the x after
// the last one.
func (w *svg) legend(x, y float64, items []LegendItem) float64 {
	for _, it := range items {
		w.printf(`<g class="legend-item">`)
		if it.Pattern != "" {
			w.rect(x, y-10, 14, 12, "swatch-base", "")
			w.overlay(x, y-10, 14, 12, it.Pattern)
		} else {
			w.rect(x, y-10, 14, 12, colour(it.Class), "")
		}
		w.text(x+18, y, "start", "legend", it.Label)
		w.b.WriteString(`</g>`)
		x += 18 + textWidth(it.Label, 12) + 16
	}
	return x
}

// attrs writes data-NAME="VALUE" pairs.
func attrs(kv []string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(&b, ` data-%s="%s"`, esc(kv[i]), esc(kv[i+1]))
	}
	return b.String()
}

// colour is the palette class of index n.
func colour(n int) string {
	if n < 0 {
		n = -n
	}
	return "c" + strconv.Itoa(n%Colours)
}

// textWidth estimates the width of s in a sans-serif face of size px: the
// server has no font metrics, and labels only need to fit roughly.
func textWidth(s string, px float64) float64 {
	return float64(len([]rune(s))) * px * 0.58
}

// fit shortens s with an ellipsis to about width w at size px; "" when not
// even one character fits.
func fit(s string, w, px float64) string {
	if textWidth(s, px) <= w {
		return s
	}
	n := int(w/(px*0.58)) - 1
	if n < 1 {
		return ""
	}
	r := []rune(s)
	return string(r[:min(n, len(r))]) + "…"
}

// niceMax rounds v up to 1, 2, 2.5 or 5 times a power of ten and returns
// it with the tick step that divides it into 4 or 5 parts.
func niceMax(v float64) (top, step float64) {
	if v <= 0 || math.IsNaN(v) {
		return 1, 0.25
	}
	if v < 4 && v == math.Trunc(v) { // small counts: whole ticks
		return max(v, 1), 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			top = m * p
			break
		}
	}
	switch top / p {
	case 1, 2, 10:
		step = top / 4
	case 2.5:
		step = top / 5
	default:
		step = top / 5
	}
	if step < 1 && v >= 1 && v == math.Trunc(v) {
		step = 1
	}
	return top, step
}

// formatNum writes a tick or value label: whole numbers without decimals,
// thousands with a thin grouping, others with up to two decimals.
func formatNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		s := strconv.FormatInt(int64(f), 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, r := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(r)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// timeSteps are the spacings a time axis may use.
var timeSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour,
	24 * time.Hour, 2 * 24 * time.Hour, 7 * 24 * time.Hour, 14 * 24 * time.Hour, 28 * 24 * time.Hour,
}

// timeTicks returns at most 8 tick times in [from, to], on whole multiples
// of the step (UTC), and the layout their labels are written in.
func timeTicks(from, to time.Time) ([]time.Time, string) {
	span := to.Sub(from)
	step := timeSteps[len(timeSteps)-1]
	for _, s := range timeSteps {
		if span/s <= 7 {
			step = s
			break
		}
	}
	layout := "Jan 2"
	switch {
	case step < time.Minute:
		layout = "15:04:05"
	case step < 24*time.Hour:
		layout = "15:04"
	}
	var ts []time.Time
	t := from.UTC().Truncate(step)
	if step >= 24*time.Hour {
		d := from.UTC()
		t = time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, time.UTC)
		if step == 7*24*time.Hour || step == 14*24*time.Hour || step == 28*24*time.Hour {
			for t.Weekday() != time.Monday {
				t = t.Add(24 * time.Hour)
			}
		}
	}
	for ; !t.After(to); t = t.Add(step) {
		if !t.Before(from) {
			ts = append(ts, t)
		}
	}
	return ts, layout
}

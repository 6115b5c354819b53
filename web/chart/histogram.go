package chart

import (
	"html/template"
	"strconv"
)

// Bin is one column of a histogram: the count of values in [From, To).
type Bin struct {
	From, To float64
	Count    int
	// Label names the bin in its tooltip ("30–45 days").
	Label string
	Href  string
}

// Histogram draws counts of values in bins along a horizontal axis, with
// an optional threshold drawn as a vertical line; bins at or past the
// threshold are hatched.
type Histogram struct {
	ID, Title, Desc string
	Bins            []Bin
	// Threshold is drawn when ThresholdLabel is set.
	Threshold      float64
	ThresholdLabel string
	// XLabel names the axis unit ("days since the version was built").
	XLabel string
	YLabel string
}

// Geometry of histograms.
const (
	histHeight = 240.0
	histLeft   = 64.0
	histRight  = 24.0
	histTop    = 30.0
	histBottom = 44.0
)

// SVG draws the histogram.
func (h Histogram) SVG() template.HTML {
	w := &svg{}
	links := false
	maxCount := 0
	lo, hi := 0.0, 1.0
	for i, b := range h.Bins {
		links = links || b.Href != ""
		maxCount = max(maxCount, b.Count)
		if i == 0 || b.From < lo {
			lo = b.From
		}
		hi = max(hi, b.To)
	}
	if h.ThresholdLabel != "" {
		hi = max(hi, h.Threshold)
	}
	w.open(h.ID, "histogram", h.Title, h.Desc, histHeight, links)
	top, step := niceMax(float64(maxCount))
	x0, x1 := histLeft, float64(Width)-histRight
	y0, y1 := histHeight-histBottom, histTop // the plot's bottom and top
	xOf := func(v float64) float64 { return x0 + (v-lo)/(hi-lo)*(x1-x0) }
	yOf := func(c float64) float64 { return y0 - c/top*(y0-y1) }
	for v := 0.0; v <= top+step/2; v += step {
		w.line(x0, yOf(v), x1, yOf(v), "grid")
		w.text(x0-6, yOf(v)+4, "end", "tick", formatNum(v))
	}
	if h.YLabel != "" {
		w.text(4, y1-12, "start", "axis-label", h.YLabel)
	}
	w.line(x0, y0, x1, y0, "axis")
	for _, b := range h.Bins {
		over := h.ThresholdLabel != "" && b.From >= h.Threshold
		class := "bin c0"
		if over {
			class = "bin over"
		}
		bx, bw := xOf(b.From)+1, xOf(b.To)-xOf(b.From)-2
		if b.Href != "" {
			w.printf(`<a href="%s" aria-label="%s">`, esc(b.Href), esc(b.Label+": "+strconv.Itoa(b.Count)))
		}
		w.rect(bx, yOf(float64(b.Count)), bw, yOf(0)-yOf(float64(b.Count)), class, b.Label+": "+formatNum(float64(b.Count)),
			"from", formatNum(b.From), "to", formatNum(b.To), "value", strconv.Itoa(b.Count))
		if over && b.Count > 0 {
			w.overlay(bx, yOf(float64(b.Count)), bw, yOf(0)-yOf(float64(b.Count)), Hatch)
		}
		if b.Href != "" {
			w.b.WriteString(`</a>`)
		}
		if b.Count > 0 && bw >= textWidth(formatNum(float64(b.Count)), 11) {
			w.text(bx+bw/2, yOf(float64(b.Count))-4, "middle", "bin-label", formatNum(float64(b.Count)))
		}
	}
	// Ticks at the bin edges, thinned to at most about 12.
	every := max(1, (len(h.Bins)+11)/12)
	for i, b := range h.Bins {
		if i%every == 0 {
			w.text(xOf(b.From), y0+16, "middle", "tick", formatNum(b.From))
		}
		if i == len(h.Bins)-1 {
			w.text(xOf(b.To), y0+16, "middle", "tick", formatNum(b.To))
		}
	}
	if h.XLabel != "" {
		w.text((x0+x1)/2, y0+36, "middle", "axis-label", h.XLabel)
	}
	if h.ThresholdLabel != "" {
		x := xOf(h.Threshold)
		w.printf(`<g class="threshold"%s>`, attrs([]string{"value", formatNum(h.Threshold)}))
		w.line(x, y1-14, x, y0, "threshold-line")
		anchor, tx := "start", x+5
		if x > (x0+x1)*0.7 {
			anchor, tx = "end", x-5
		}
		w.text(tx, y1-4, anchor, "threshold-label", h.ThresholdLabel)
		w.b.WriteString(`</g>`)
	}
	return w.close()
}

package chart

import "html/template"

// Segment is one part of a stacked bar.
type Segment struct {
	// Label is written inside the segment when it fits.
	Label string
	Value float64
	// Class is the palette colour.
	Class int
	// Patterns are laid over the colour (an exposed version, one over
	// its age limit).
	Patterns []Pattern
	// Href makes the segment a link.
	Href string
	// Tip is the tooltip, and the link's accessible name.
	Tip string
	// Key is written as data-key, for tests and for finding a segment.
	Key string
}

// Bar is one row of a stacked bar chart.
type Bar struct {
	Label string
	Href  string
	// Total is written after the bar; empty: the sum of the values.
	Total    string
	Segments []Segment
}

// StackedBars is a horizontal stacked bar chart: a row per bar, segments
// left to right in the order given.
type StackedBars struct {
	ID, Title, Desc string
	Bars            []Bar
	Legend          []LegendItem
	// Share draws every bar across the whole width (segments as shares of
	// their bar); otherwise bars share one scale with an axis in Unit.
	Share bool
	Unit  string
}

// Geometry of horizontal bar charts.
const (
	barLabelWidth = 170.0
	barTotalWidth = 80.0
	barHeight     = 22.0
	barGap        = 10.0
	legendHeight  = 26.0
	axisHeight    = 40.0
)

// barLayout is where the bars of a chart go.
type barLayout struct {
	x0, x1 float64 // the plot area
	top    float64 // the first bar's top
	height float64 // the whole chart's
}

func (c StackedBars) layout() barLayout {
	l := barLayout{x0: barLabelWidth, x1: Width - barTotalWidth, top: 4}
	if len(c.Legend) > 0 {
		l.top += legendHeight
	}
	l.height = l.top + float64(len(c.Bars))*(barHeight+barGap)
	if !c.Share {
		l.height += axisHeight
	}
	return l
}

// sum is the total of a bar's values.
func (b Bar) sum() float64 {
	var s float64
	for _, g := range b.Segments {
		s += max(g.Value, 0)
	}
	return s
}

// SVG draws the chart.
func (c StackedBars) SVG() template.HTML {
	l := c.layout()
	links := false
	var top float64
	for _, b := range c.Bars {
		top = max(top, b.sum())
		for _, g := range b.Segments {
			links = links || g.Href != ""
		}
		links = links || b.Href != ""
	}
	top, step := niceMax(top)
	w := &svg{}
	n := 0
	for _, b := range c.Bars {
		n += len(b.Segments)
	}
	w.b.Grow(4096 + 200*len(c.Bars) + 400*n) // about what a segment takes
	w.open(c.ID, "stacked", c.Title, c.Desc, l.height, links)
	if len(c.Legend) > 0 {
		w.legend(l.x0, 16, c.Legend)
	}
	if !c.Share {
		c.axis(w, l, top, step)
	}
	for i, b := range c.Bars {
		y := l.top + float64(i)*(barHeight+barGap)
		w.printf(`<g class="bar"%s>`, attrs([]string{"label", b.Label}))
		label := fit(b.Label, barLabelWidth-12, 13)
		if b.Href != "" {
			w.printf(`<a href="%s">`, esc(b.Href))
			w.text(l.x0-8, y+barHeight/2+4.5, "end", "bar-label", label)
			w.b.WriteString(`</a>`)
		} else {
			w.text(l.x0-8, y+barHeight/2+4.5, "end", "bar-label", label)
		}
		sum := b.sum()
		full := top
		if c.Share {
			full = sum
		}
		x := l.x0
		for _, g := range b.Segments {
			if g.Value <= 0 || full <= 0 {
				continue
			}
			wd := g.Value / full * (l.x1 - l.x0)
			if g.Href != "" { // named by the rect's <title>
				w.b.WriteString(`<a`)
				w.attr("href", g.Href)
				w.b.WriteByte('>')
			}
			w.rect(x, y, wd, barHeight, "seg "+colour(g.Class), g.Tip, "key", g.Key, "value", formatNum(g.Value))
			for _, p := range g.Patterns {
				w.overlay(x, y, wd, barHeight, p)
			}
			if lab := fit(g.Label, wd-6, 11); lab != "" {
				w.text(x+wd/2, y+barHeight/2+4, "middle", "seg-label on-"+colour(g.Class), lab)
			}
			if g.Href != "" {
				w.b.WriteString(`</a>`)
			}
			x += wd
		}
		total := b.Total
		if total == "" {
			total = formatNum(sum)
		}
		w.text(x+6, y+barHeight/2+4.5, "start", "bar-total", total)
		w.b.WriteString(`</g>`)
	}
	return w.close()
}

// axis draws the value scale under the bars, with grid lines.
func (c StackedBars) axis(w *svg, l barLayout, top, step float64) {
	bottom := l.top + float64(len(c.Bars))*(barHeight+barGap) - barGap/2
	for v := 0.0; v <= top+step/2; v += step {
		x := l.x0 + v/top*(l.x1-l.x0)
		w.line(x, l.top-4, x, bottom, "grid")
		w.text(x, bottom+16, "middle", "tick", formatNum(v))
	}
	if c.Unit != "" {
		w.text((l.x0+l.x1)/2, bottom+32, "middle", "axis-label", c.Unit)
	}
}

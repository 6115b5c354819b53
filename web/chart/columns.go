package chart

import (
	"html/template"
	"time"
)

// Column is one stacked column over the time span [From, To).
type Column struct {
	From, To time.Time
	// Parts are stacked from the baseline up; their Label is the tooltip.
	Parts []Segment
}

// Columns is a stacked column chart over time (health checks passed and
// failed per interval), sharing the time axis and markers of a LineChart.
type Columns struct {
	ID, Title, Desc string
	Columns         []Column
	Legend          []LegendItem
	Markers         []Marker
	From, To        time.Time
	YLabel          string
	Height          float64
}

// SVG draws the chart.
func (c Columns) SVG() template.HTML {
	from, to := c.From, c.To
	maxY := 0.0
	for _, col := range c.Columns {
		if from.IsZero() || col.From.Before(from) {
			from = col.From
		}
		if col.To.After(to) {
			to = col.To
		}
		var s float64
		for _, p := range col.Parts {
			s += max(p.Value, 0)
		}
		maxY = max(maxY, s)
	}
	f := newTimeFrame(from, to, c.Height, maxY)
	w := &svg{}
	w.open(c.ID, "columns", c.Title, c.Desc, f.height, false)
	f.frame(w, c.YLabel, c.Markers)
	if len(c.Legend) > 0 {
		for i, it := range c.Legend {
			w.legend(f.x1+8, f.y1+6+float64(i)*18, []LegendItem{it})
		}
	}
	for _, col := range c.Columns {
		x, wd := f.x(col.From), f.x(col.To)-f.x(col.From)
		if wd > 3 {
			x, wd = x+0.5, wd-1
		}
		base := 0.0
		for _, p := range col.Parts {
			if p.Value <= 0 {
				continue
			}
			y := f.y(base + p.Value)
			w.rect(x, y, wd, f.y(base)-y, "col "+colour(p.Class), p.Tip, "key", p.Key, "value", formatNum(p.Value),
				"at", col.From.UTC().Format(time.RFC3339))
			for _, pat := range p.Patterns {
				w.overlay(x, y, wd, f.y(base)-y, pat)
			}
			base += p.Value
		}
	}
	return w.close()
}

package chart

import (
	"html/template"
	"sort"
	"strings"
	"time"
)

// Point is one value at one time.
type Point struct {
	X time.Time
	Y float64
}

// Series is one line.
type Series struct {
	Name  string
	Class int
	// Points in time order.
	Points []Point
}

// Marker is a moment marked across the plot (a batch, a rollback).
type Marker struct {
	X     time.Time
	Label string
	// Strong draws it as a solid, labelled line (a rollback); otherwise a
	// faint dotted one.
	Strong bool
}

// LineChart draws series over time from a zero baseline. Lines differ in
// colour and in dash, and each is named at its last point with its last
// value, so no legend lookup is needed.
type LineChart struct {
	ID, Title, Desc string
	Series          []Series
	Markers         []Marker
	// From and To bound the time axis; zero: the data's range.
	From, To time.Time
	YLabel   string
	// Height is the chart's height; 0 is 240.
	Height float64
}

// dashes are the stroke-dasharray values of series 0, 1, 2…
var dashes = []string{"", "8 4", "2 3", "10 3 2 3", "4 4", "12 4 4 4"}

// Geometry of time charts.
const (
	timeLeft   = 64.0
	timeRight  = 150.0 // room for the series names at their last point
	timeTop    = 24.0
	timeBottom = 30.0
)

// timeFrame is the plot area of a chart over time.
type timeFrame struct {
	from, to   time.Time
	x0, x1     float64
	y0, y1     float64 // bottom, top
	top, step  float64
	height     float64
	ticks      []time.Time
	tickLayout string
}

func newTimeFrame(from, to time.Time, height, maxY float64) timeFrame {
	if height == 0 {
		height = 240
	}
	if !to.After(from) {
		to = from.Add(time.Minute)
	}
	f := timeFrame{from: from, to: to, x0: timeLeft, x1: Width - timeRight, y0: height - timeBottom, y1: timeTop, height: height}
	f.top, f.step = niceMax(maxY)
	f.ticks, f.tickLayout = timeTicks(from, to)
	return f
}

func (f timeFrame) x(t time.Time) float64 {
	return f.x0 + float64(t.Sub(f.from))/float64(f.to.Sub(f.from))*(f.x1-f.x0)
}

func (f timeFrame) y(v float64) float64 { return f.y0 - v/f.top*(f.y0-f.y1) }

// frame draws the grid, both axes' ticks and the markers.
func (f timeFrame) frame(w *svg, yLabel string, markers []Marker) {
	for v := 0.0; v <= f.top+f.step/2; v += f.step {
		w.line(f.x0, f.y(v), f.x1, f.y(v), "grid")
		w.text(f.x0-6, f.y(v)+4, "end", "tick", formatNum(v))
	}
	if yLabel != "" {
		w.text(4, f.y1-10, "start", "axis-label", yLabel)
	}
	w.line(f.x0, f.y0, f.x1, f.y0, "axis")
	for _, t := range f.ticks {
		w.line(f.x(t), f.y0, f.x(t), f.y0+4, "axis")
		w.text(f.x(t), f.y0+17, "middle", "tick", t.UTC().Format(f.tickLayout))
	}
	for _, m := range markers {
		if m.X.Before(f.from) || m.X.After(f.to) {
			continue
		}
		x := f.x(m.X)
		class := "marker"
		if m.Strong {
			class = "marker strong"
		}
		w.printf(`<g class="%s"%s>`, class, attrs([]string{"label", m.Label, "at", m.X.UTC().Format(time.RFC3339)}))
		w.line(x, f.y1-6, x, f.y0, "marker-line")
		if m.Strong {
			w.text(x+4, f.y1-8, "start", "marker-label", m.Label)
		} else {
			w.printf(`<title>%s</title>`, esc(m.Label))
		}
		w.b.WriteString(`</g>`)
	}
}

// bounds returns the chart's time range and largest value.
func (c LineChart) bounds() (from, to time.Time, maxY float64) {
	from, to = c.From, c.To
	for _, s := range c.Series {
		for _, p := range s.Points {
			if c.From.IsZero() && (from.IsZero() || p.X.Before(from)) {
				from = p.X
			}
			if c.To.IsZero() && p.X.After(to) {
				to = p.X
			}
			maxY = max(maxY, p.Y)
		}
	}
	return from, to, maxY
}

// SVG draws the chart.
func (c LineChart) SVG() template.HTML {
	from, to, maxY := c.bounds()
	f := newTimeFrame(from, to, c.Height, maxY)
	w := &svg{}
	w.open(c.ID, "line", c.Title, c.Desc, f.height, false)
	f.frame(w, c.YLabel, c.Markers)
	type end struct {
		y    float64
		text string
		cls  string
	}
	var ends []end
	for i, s := range c.Series {
		if len(s.Points) == 0 {
			continue
		}
		last := s.Points[len(s.Points)-1]
		w.printf(`<g class="series %s"%s>`, colour(s.Class), attrs([]string{"series", s.Name, "last", formatNum(last.Y), "last-at", last.X.UTC().Format(time.RFC3339)}))
		var d strings.Builder
		for j, p := range s.Points {
			op := "L"
			if j == 0 {
				op = "M"
			}
			d.WriteString(op + num(f.x(p.X)) + " " + num(f.y(p.Y)) + " ")
		}
		dash := ""
		if dd := dashes[i%len(dashes)]; dd != "" {
			dash = ` stroke-dasharray="` + dd + `"`
		}
		w.printf(`<path d="%s" class="line"%s><title>%s</title></path>`, strings.TrimSpace(d.String()), dash, esc(s.Name))
		if len(s.Points) == 1 {
			w.printf(`<circle cx="%s" cy="%s" r="3" class="point"/>`, num(f.x(last.X)), num(f.y(last.Y)))
		}
		w.printf(`<circle cx="%s" cy="%s" r="3.5" class="last-point"><title>%s: %s on %s</title></circle>`,
			num(f.x(last.X)), num(f.y(last.Y)), esc(s.Name), formatNum(last.Y), esc(last.X.UTC().Format("2006-01-02 15:04")))
		w.b.WriteString(`</g>`)
		ends = append(ends, end{f.y(last.Y) + 4, s.Name + " " + formatNum(last.Y), colour(s.Class)})
	}
	// Names at the right end, pushed apart so they do not overlap.
	sort.SliceStable(ends, func(i, j int) bool { return ends[i].y < ends[j].y })
	for i := 1; i < len(ends); i++ {
		ends[i].y = max(ends[i].y, ends[i-1].y+13)
	}
	for _, e := range ends {
		w.text(f.x1+8, e.y, "start", "series-label "+e.cls, fit(e.text, timeRight-12, 12))
	}
	return w.close()
}

package web

import (
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/web/chart"
)

// The pictures on the fleet, overage and runs pages: view models built
// from the same reports the tables show, drawn by package chart.

// statusClass is the palette colour of a version status in the version
// spread: green for ready, blue for tested, yellow for candidates, orange
// for deprecated, vermilion for failed and revoked, grey for unknown.
func statusClass(st kiln.Status, unknown bool) int {
	switch {
	case unknown:
		return 7
	case st == kiln.StatusReady:
		return 2
	case st == kiln.StatusTested:
		return 4
	case st == kiln.StatusCandidate:
		return 6
	case st == kiln.StatusDeprecated:
		return 1
	}
	return 5 // failed, revoked
}

// statusLegend explains the colours of the statuses present in rows.
func statusLegend(rows []*kiln.ReportRow) []chart.LegendItem {
	seen := map[string]bool{}
	var out []chart.LegendItem
	for _, st := range append(kiln.Statuses, "") {
		for _, r := range rows {
			name := string(r.Status)
			if r.Unknown {
				name = ""
			}
			if name != string(st) || seen[name] {
				continue
			}
			seen[name] = true
			label := name
			if name == "" {
				label = "unknown to the registry"
			}
			out = append(out, chart.LegendItem{Label: label, Class: statusClass(st, name == "")})
		}
	}
	return out
}

// spreadChart draws one bar per image line of the report, a segment per
// version in use sized by its share of the line's instances, oldest left,
// newest right. Versions exposed to the chosen advisory (exposed, when
// not nil) are hatched, versions with instances over their age limit
// dotted; a segment links to its drill-down.
func spreadChart(rows []*kiln.ReportRow, env string, exposed map[kiln.VersionRef]bool, advisory string) template.HTML {
	c := chart.StackedBars{ID: "spread", Share: true, Title: "Versions in use per image line",
		Legend: statusLegend(rows)}
	if exposed != nil {
		c.Legend = append(c.Legend, chart.LegendItem{Label: "exposed to " + advisory, Pattern: chart.Hatch})
	}
	over := false
	images := 0
	for _, r := range rows {
		over = over || r.OverAge > 0
		if len(c.Bars) == 0 || c.Bars[len(c.Bars)-1].Label != r.Image {
			c.Bars = append(c.Bars, chart.Bar{Label: r.Image, Href: imageURLOf(r.Image)})
			images++
		}
		b := &c.Bars[len(c.Bars)-1]
		ref := kiln.VersionRef{Image: r.Image, Number: r.Number}
		tip := fmt.Sprintf("%s (%s): %d instances", r.Name, statusWord(r), r.Instances)
		g := chart.Segment{Label: strconv.Itoa(r.Number), Value: float64(r.Instances), Class: statusClass(r.Status, r.Unknown),
			Href: drillURL(r.Image, r.Number, env), Key: r.Name}
		if exposed[ref] {
			g.Patterns = append(g.Patterns, chart.Hatch)
			tip += ", exposed to " + advisory
		}
		if r.OverAge > 0 {
			g.Patterns = append(g.Patterns, chart.Dots)
			tip += fmt.Sprintf(", %d over their age limit", r.OverAge)
		}
		g.Tip = tip
		b.Segments = append(b.Segments, g)
	}
	for i := range c.Bars {
		n := 0
		for _, g := range c.Bars[i].Segments {
			n += int(g.Value)
		}
		c.Bars[i].Total = formatCount(n)
		c.Bars[i].Segments = mergeThin(c.Bars[i].Segments, float64(n), c.Bars[i].Label, env)
	}
	if over {
		c.Legend = append(c.Legend, chart.LegendItem{Label: "over age limit", Pattern: chart.Dots})
	}
	where := "all environments"
	if env != "" {
		where = "environment " + env
	}
	c.Desc = fmt.Sprintf("%d image lines in %s. Each bar is one image line, split into its versions in use by their share of its instances, oldest version left, newest right; the number at the end is the line's instance count. The table below has every number.", images, where)
	return c.SVG()
}

// thinShare is the share of a bar below which neighbouring segments are
// merged: about 3 pixels, too thin to see or click. It keeps the spread of
// an image line with thousands of versions in use a picture rather than
// megabytes of slivers.
const thinShare = 3.0 / 710

// mergeThin merges each run of two or more neighbouring segments thinner
// than thinShare of total into one grey segment that links to the image's
// drill-down and keeps their patterns.
func mergeThin(segs []chart.Segment, total float64, image, env string) []chart.Segment {
	out := make([]chart.Segment, 0, len(segs))
	for i := 0; i < len(segs); {
		j := i
		for j < len(segs) && segs[j].Value < thinShare*total {
			j++
		}
		if j-i < 2 {
			out = append(out, segs[i])
			i++
			continue
		}
		m := chart.Segment{Class: 7, Href: drillURL(image, 0, env), Key: segs[i].Key + "…" + segs[j-1].Key}
		seen := map[chart.Pattern]bool{}
		for _, g := range segs[i:j] {
			m.Value += g.Value
			for _, p := range g.Patterns {
				if !seen[p] {
					seen[p] = true
					m.Patterns = append(m.Patterns, p)
				}
			}
		}
		m.Tip = fmt.Sprintf("%d versions from %s to %s: %s instances together", j-i, segs[i].Key, segs[j-1].Key, formatCount(int(m.Value)))
		out = append(out, m)
		i = j
	}
	return out
}

func statusWord(r *kiln.ReportRow) string {
	if r.Unknown {
		return "unknown"
	}
	return string(r.Status)
}

func imageURLOf(image string) string { return Prefix + "images/" + url.PathEscape(image) }

// formatCount writes a count ≥ 0 with thousands separated.
func formatCount(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ageChart is one histogram of the overage page, with its numbers.
type ageChart struct {
	Env   string // "" when it spans the environments of the filter
	Limit kiln.Age
	SVG   template.HTML
	Bins  []fleet.AgeBin
	// Past is the overage report's count past the limit; Unknown counts
	// instances whose version's build time is unknown.
	Past, Unknown, Total int
}

// days writes a duration in days, with up to two decimals.
func days(d time.Duration) string {
	f := d.Hours() / 24
	if f == float64(int64(f)) {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// newAgeChart bins us by age with limit drawn, past being what the
// overage report counts past it.
func newAgeChart(id, env string, us []*kiln.Usage, now time.Time, limit kiln.Age, past int) ageChart {
	bins, unknown := fleet.AgeHistogram(us, now, limit.Duration())
	a := ageChart{Env: env, Limit: limit, Bins: bins, Past: past, Unknown: unknown}
	h := chart.Histogram{ID: id, XLabel: "days since the version was built", YLabel: "instances",
		Threshold: limit.Duration().Hours() / 24, ThresholdLabel: fmt.Sprintf("limit %s · %s past it", limit, formatCount(past))}
	for _, b := range bins {
		a.Total += b.Instances
		h.Bins = append(h.Bins, chart.Bin{From: b.From.Hours() / 24, To: b.To.Hours() / 24, Count: b.Instances,
			Label: fmt.Sprintf("built %s–%s days ago", days(b.From), days(b.To))})
	}
	where := "all environments"
	if env != "" {
		where = env
	}
	h.Title = fmt.Sprintf("Instances by image age in %s, limit %s", where, limit)
	h.Desc = fmt.Sprintf("Histogram of %s instances by the age of the version they run, in bins of %s days; the line at %s days is the age limit, and the %s instances right of it are past it (hatched).",
		formatCount(a.Total), days(bins[0].To-bins[0].From), days(limit.Duration()), formatCount(past))
	if unknown > 0 {
		h.Desc += fmt.Sprintf(" %s instances run versions of unknown build time and are not shown.", formatCount(unknown))
	}
	a.SVG = h.SVG()
	return a
}

// stageRun is one run's stage durations, for the table under the chart.
type stageRun struct {
	Run   *kiln.Run
	Took  map[string]time.Duration
	State map[string]kiln.StageStatus
}

// stageChart is the stage-duration chart of one image's last runs.
type stageChart struct {
	Image  string
	Stages []string
	Runs   []stageRun
	SVG    template.HTML
}

// maxChartRuns is how many runs of one image the stage chart shows.
const maxChartRuns = 10

// stageCharts draws, per image among runs (newest first), a bar per run
// of its last runs, split into its stages by how long each took, in one
// scale per image: a slow stage is a long segment. Running stages count
// until now; stages not started count nothing. Failed stages are hatched.
func stageCharts(runs []*kiln.Run, now time.Time) []stageChart {
	var out []stageChart
	byImage := map[string]int{}
	for _, r := range runs {
		i, ok := byImage[r.Image]
		if !ok {
			i = len(out)
			byImage[r.Image] = i
			out = append(out, stageChart{Image: r.Image})
		}
		c := &out[i]
		if len(c.Runs) >= maxChartRuns {
			continue
		}
		sr := stageRun{Run: r, Took: map[string]time.Duration{}, State: map[string]kiln.StageStatus{}}
		for _, st := range r.Stages {
			if !containsString(c.Stages, st.Name) {
				c.Stages = append(c.Stages, st.Name)
			}
			sr.State[st.Name] = st.Status
			switch {
			case st.StartedAt.IsZero():
			case st.FinishedAt.IsZero():
				sr.Took[st.Name] = now.Sub(st.StartedAt)
			default:
				sr.Took[st.Name] = st.FinishedAt.Sub(st.StartedAt)
			}
		}
		c.Runs = append(c.Runs, sr)
	}
	for i := range out {
		out[i].SVG = out[i].draw()
	}
	return out
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (c stageChart) draw() template.HTML {
	longest := time.Duration(0)
	for _, r := range c.Runs {
		var sum time.Duration
		for _, d := range r.Took {
			sum += d
		}
		longest = max(longest, sum)
	}
	unit, per := "seconds", time.Second
	if longest > 10*time.Minute {
		unit, per = "minutes", time.Minute
	}
	b := chart.StackedBars{ID: "stages-" + c.Image, Unit: unit, Title: "Stage durations of the last runs of " + c.Image}
	for i, name := range c.Stages {
		b.Legend = append(b.Legend, chart.LegendItem{Label: name, Class: i})
	}
	failed := false
	for _, r := range c.Runs {
		bar := chart.Bar{Label: "run " + strconv.FormatInt(r.Run.ID, 10), Href: Prefix + "runs/" + strconv.FormatInt(r.Run.ID, 10)}
		var sum time.Duration
		for i, name := range c.Stages {
			d, ok := r.Took[name]
			if !ok {
				continue
			}
			sum += d
			g := chart.Segment{Label: name, Value: float64(d) / float64(per), Class: i, Key: name,
				Tip: fmt.Sprintf("run %d, %s: %s (%s)", r.Run.ID, name, tookString(d), r.State[name])}
			if r.State[name] == kiln.StageFailed || r.State[name] == kiln.StageInterrupted {
				g.Patterns, failed = []chart.Pattern{chart.Hatch}, true
			}
			bar.Segments = append(bar.Segments, g)
		}
		bar.Total = tookString(sum)
		b.Bars = append(b.Bars, bar)
	}
	if failed {
		b.Legend = append(b.Legend, chart.LegendItem{Label: "failed", Pattern: chart.Hatch})
	}
	b.Desc = fmt.Sprintf("The last %d runs of %s, newest first; each bar is one run split into its stages by how long each took, on one scale in %s. The table below has every duration.", len(c.Runs), c.Image, unit)
	return b.SVG()
}

// tookString writes a stage's duration: seconds under a minute, else
// minutes and seconds, else hours and minutes.
func tookString(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// spread fills the fleet page's version spread from the report's rows,
// before they are cut to a page, marking the versions exposed to the
// advisory the request names (an unknown one is said above the page).
func (s *Server) spread(r *http.Request, d *reportData, p *page) error {
	ctx := r.Context()
	d.Advisory = r.URL.Query().Get("advisory")
	var err error
	if d.Choices, d.ChoicesTotal, err = s.cfg.Advisories.ListAdvisories(ctx, kiln.AdvisoryFilter{Limit: maxChoices}); err != nil {
		return err
	}
	var exposed map[kiln.VersionRef]bool
	if d.Advisory != "" {
		e, err := s.fleet.ExposedTo(ctx, d.Advisory, d.Env)
		switch c := kiln.ErrorCode(err); {
		case err == nil:
			exposed = map[kiln.VersionRef]bool{}
			for _, row := range e.Rows {
				exposed[kiln.VersionRef{Image: row.Image, Number: row.Number}] = true
			}
			d.Exposed = e.Instances
		case c == kiln.ENOTFOUND || c == kiln.EINVALID:
			p.Error = kiln.ErrorMessage(err)
		default:
			return err
		}
	}
	d.Spread = spreadChart(d.Report.Rows, d.Env, exposed, d.Advisory)
	return nil
}

// ageCharts draws the overage page's histograms from the usage rows us of
// env: one with the max age given, else one per environment with a
// policy. Each says the count past its limit from the overage report ov.
func ageCharts(us []*kiln.Usage, ov *kiln.Overage, limit kiln.Age, policies []*kiln.AgePolicy, env string, now time.Time) []ageChart {
	if limit > 0 {
		return []ageChart{newAgeChart("ages", env, us, now, limit, ov.Instances)}
	}
	var out []ageChart
	for i, p := range policies {
		if env != "" && p.Environment != env {
			continue
		}
		var rows []*kiln.Usage
		for _, u := range us {
			if u.Environment == p.Environment {
				rows = append(rows, u)
			}
		}
		past := 0
		for _, row := range ov.Rows {
			if row.Environment == p.Environment {
				past += row.Instances
			}
		}
		out = append(out, newAgeChart("ages-"+strconv.Itoa(i), p.Environment, rows, now, p.MaxAge, past))
	}
	return out
}

package web

import (
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/web/chart"
)

// trendDays is how far back the trend charts reach.
const trendDays = 90

// trendChart is one line chart of the trends page with its table: a row
// per day, a column per environment.
type trendChart struct {
	ID    string
	Title string
	SVG   template.HTML
	Envs  []string
	Rows  []trendRow
}

type trendRow struct {
	Day    time.Time
	Values []int // per environment of the chart; -1 when not recorded
}

type trendsData struct {
	// Enabled is false when the server keeps no fleet history.
	Enabled    bool
	Env        string
	Envs       []string
	Severity   string
	Severities []string
	Charts     []trendChart
	// Latest are the counts of the last recorded day.
	Latest []*kiln.FleetCount
	Since  time.Time
}

func (s *Server) trendsPage(w http.ResponseWriter, r *http.Request) {
	const title = "Trends"
	ctx := r.Context()
	d := trendsData{Enabled: s.cfg.History != nil, Severity: r.URL.Query().Get("severity"), Severities: kiln.Severities}
	var err error
	if d.Env, err = envParam(r); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Severity == "" {
		d.Severity = "high"
	}
	if !slices.Contains(kiln.Severities, d.Severity) {
		s.fail(w, r, title, kiln.FieldErrorf(kiln.EINVALID, "severity", "severity %q is not one of %s; pick one from the menu", d.Severity, strings.Join(kiln.Severities, ", ")))
		return
	}
	if d.Envs, err = s.envMenu(ctx); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Enabled {
		today := kiln.Day(s.cfg.Clock())
		d.Since = today.AddDate(0, 0, -(trendDays - 1))
		cs, err := s.cfg.History.ListSnapshots(ctx, kiln.HistoryFilter{Environment: d.Env, Since: d.Since})
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		d.Charts, d.Latest = trendCharts(cs, d.Severity, d.Since, today)
	}
	s.render(w, r, http.StatusOK, "trends", page{Title: title, Nav: "trends", Data: d})
}

// trendCharts draws the three trends from counts sorted by day and
// environment, between the days from and to: a line per environment.
func trendCharts(cs []*kiln.FleetCount, severity string, from, to time.Time) ([]trendChart, []*kiln.FleetCount) {
	var envs []string
	var days []time.Time
	at := map[time.Time]map[string]*kiln.FleetCount{}
	for _, c := range cs {
		if !slices.Contains(envs, c.Environment) {
			envs = append(envs, c.Environment)
		}
		if at[c.Day] == nil {
			at[c.Day] = map[string]*kiln.FleetCount{}
			days = append(days, c.Day)
		}
		at[c.Day][c.Environment] = c
	}
	slices.Sort(envs)
	var latest []*kiln.FleetCount
	if len(days) > 0 {
		for _, env := range envs {
			if c := at[days[len(days)-1]][env]; c != nil {
				latest = append(latest, c)
			}
		}
	}
	kinds := []struct {
		id, title, what string
		get             func(*kiln.FleetCount) int
	}{
		{"trend-latest", "Instances on their image's latest ready version", "on their image's latest ready version",
			func(c *kiln.FleetCount) int { return c.OnLatest }},
		{"trend-exposed", "Instances exposed to an advisory of severity " + severity + " or above", "exposed to an advisory of severity " + severity + " or above",
			func(c *kiln.FleetCount) int { return c.Exposed.AtLeast(severity) }},
		{"trend-overage", "Instances past their environment's age limit", "past their environment's age limit",
			func(c *kiln.FleetCount) int { return c.OverAge }},
	}
	var out []trendChart
	for _, k := range kinds {
		tc := trendChart{ID: k.id, Title: k.title, Envs: envs}
		lc := chart.LineChart{ID: k.id, Title: k.title, From: from, To: to, YLabel: "instances"}
		var lasts []string
		for i, env := range envs {
			sr := chart.Series{Name: envName(env), Class: i}
			for _, day := range days {
				if c := at[day][env]; c != nil {
					sr.Points = append(sr.Points, chart.Point{X: day, Y: float64(k.get(c))})
				}
			}
			if n := len(sr.Points); n > 0 {
				lasts = append(lasts, fmt.Sprintf("%s %s on %s", sr.Name, formatCount(int(sr.Points[n-1].Y)), sr.Points[n-1].X.Format("Jan 2")))
			}
			lc.Series = append(lc.Series, sr)
		}
		lc.Desc = fmt.Sprintf("Daily counts of instances %s per environment, %s to %s; one line per environment. Last values: %s. The table below has every day.",
			k.what, from.Format("Jan 2"), to.Format("Jan 2"), orNothing(strings.Join(lasts, ", ")))
		tc.SVG = lc.SVG()
		for i := len(days) - 1; i >= 0; i-- {
			row := trendRow{Day: days[i]}
			for _, env := range envs {
				v := -1
				if c := at[days[i]][env]; c != nil {
					v = k.get(c)
				}
				row.Values = append(row.Values, v)
			}
			tc.Rows = append(tc.Rows, row)
		}
		out = append(out, tc)
	}
	return out, latest
}

// envName names an environment in a legend; instances without one are
// "(none)".
func envName(env string) string {
	if env == "" {
		return "(none)"
	}
	return env
}

func orNothing(s string) string {
	if s == "" {
		return "nothing recorded yet"
	}
	return s
}

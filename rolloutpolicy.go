package kiln

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Follow modes of a service.
const (
	// FollowChannel: kiln serve rolls the service out whenever the channel
	// of its image in its environment moves (a delivery, a promotion, a
	// channel rollback), within the service's RolloutPolicy.
	FollowChannel = "channel"
	// FollowNone: only a person rolls the service out (`kiln rollout`).
	FollowNone = "none"
)

// RolloutPolicy is when, how often and under what watch the rollouts kiln
// serve starts for a following service may run. Batch size, surge,
// minimum healthy and bake time are the Service's own fields; they apply
// to every rollout, started by a person or by kiln serve.
type RolloutPolicy struct {
	// Window, when set, is when kiln serve may start a rollout; outside it
	// a channel move waits for the window to open.
	Window *UpdateWindow `json:"window,omitempty"`
	// Limit, when set, caps the rollouts started in the service's
	// environment (by anyone, of any service there) per period; kiln serve
	// waits while the cap is reached.
	Limit *RolloutLimit `json:"limit,omitempty"`
	// Gate, when set, is evaluated after each batch of every rollout of
	// the service; a failing gate rolls the rollout back.
	Gate *MetricGate `json:"gate,omitempty"`
}

// Validate checks a policy; field prefixes the fields named in errors.
func (p *RolloutPolicy) Validate() error {
	if p.Window != nil {
		if err := p.Window.Validate(); err != nil {
			return err
		}
	}
	if p.Limit != nil {
		if err := p.Limit.Validate(); err != nil {
			return err
		}
	}
	if p.Gate != nil {
		if err := p.Gate.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// IsZero reports whether the policy sets nothing.
func (p RolloutPolicy) IsZero() bool { return p.Window == nil && p.Limit == nil && p.Gate == nil }

// UpdateWindow is a recurring time when rollouts may start: on Days, from
// Start to End o'clock in the time zone Zone. An End at or before Start
// runs into the next day ("22:00"–"04:00"); a rollout that started in the
// window runs to its end.
type UpdateWindow struct {
	// Days the window opens on; empty means every day.
	Days []time.Weekday `json:"days,omitempty"`
	// Start and End are "HH:MM", 24-hour clock.
	Start string `json:"start"`
	End   string `json:"end"`
	// Zone is an IANA time zone name ("Europe/Berlin", "UTC").
	Zone string `json:"zone"`
}

var dayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// ParseDays parses "mon-fri", "sat,sun", "mon,wed-fri" or "daily" (every
// day) into weekdays.
func ParseDays(field, s string) ([]time.Weekday, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" || s == "daily" || s == "*" {
		return nil, nil
	}
	day := func(n string) (time.Weekday, bool) {
		n = strings.TrimSpace(n)
		if len(n) > 3 {
			n = n[:3]
		}
		i := slices.Index(dayNames, n)
		return time.Weekday(i), i >= 0
	}
	var out []time.Weekday
	for part := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		a, ok1 := day(from)
		b, ok2 := a, true
		if isRange {
			b, ok2 = day(to)
		}
		if !ok1 || !ok2 {
			return nil, FieldErrorf(EINVALID, field, "%q is not a list of days; write e.g. mon-fri, sat,sun or daily", s)
		}
		for d := a; ; d = (d + 1) % 7 {
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
			if d == b {
				break
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// FormatDays is the inverse of ParseDays ("daily" for every day).
func FormatDays(days []time.Weekday) string {
	if len(days) == 0 || len(days) == 7 {
		return "daily"
	}
	names := make([]string, len(days))
	for i, d := range days {
		names[i] = dayNames[d]
	}
	return strings.Join(names, ",")
}

// ParseUpdateWindow parses the --window flag: "DAYS HH:MM-HH:MM ZONE",
// e.g. "mon-fri 02:00-05:00 Europe/Berlin".
func ParseUpdateWindow(field, s string) (*UpdateWindow, error) {
	parts := strings.Fields(s)
	if len(parts) != 3 {
		return nil, FieldErrorf(EINVALID, field, "window %q is not DAYS HH:MM-HH:MM ZONE; write e.g. \"mon-fri 02:00-05:00 Europe/Berlin\"", s)
	}
	days, err := ParseDays(field, parts[0])
	if err != nil {
		return nil, err
	}
	start, end, ok := strings.Cut(parts[1], "-")
	if !ok {
		return nil, FieldErrorf(EINVALID, field, "window hours %q are not HH:MM-HH:MM; write e.g. 02:00-05:00", parts[1])
	}
	w := &UpdateWindow{Days: days, Start: start, End: end, Zone: parts[2]}
	return w, w.ValidateField(field)
}

func (w *UpdateWindow) String() string {
	return fmt.Sprintf("%s %s-%s %s", FormatDays(w.Days), w.Start, w.End, w.Zone)
}

// Validate checks a window.
func (w *UpdateWindow) Validate() error { return w.ValidateField("window") }

// ValidateField checks a window, naming field in errors.
func (w *UpdateWindow) ValidateField(field string) error {
	for _, hm := range []string{w.Start, w.End} {
		if _, err := clockMinutes(hm); err != nil {
			return FieldErrorf(EINVALID, field, "window time %q is not HH:MM on a 24-hour clock; write e.g. 02:00", hm)
		}
	}
	if w.Zone == "" {
		return FieldErrorf(EINVALID, field, "a window needs a time zone; give an IANA name such as UTC or Europe/Berlin")
	}
	if _, err := time.LoadLocation(w.Zone); err != nil {
		return FieldErrorf(EINVALID, field, "time zone %q is not known here (%v); give an IANA name such as UTC or Europe/Berlin (the system's tzdata)", w.Zone, err)
	}
	for _, d := range w.Days {
		if d < time.Sunday || d > time.Saturday {
			return FieldErrorf(EINVALID, field, "day %d is not a weekday", d)
		}
	}
	return nil
}

func clockMinutes(hm string) (int, error) {
	h, m, ok := strings.Cut(hm, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("not HH:MM")
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("not HH:MM")
	}
	return hh*60 + mm, nil
}

// Next returns when the window is next open at or after t: t itself when
// it is open at t. A window that never opens (it cannot: Validate refuses
// one) returns the zero time.
func (w *UpdateWindow) Next(t time.Time) time.Time {
	loc, err := time.LoadLocation(w.Zone)
	if err != nil {
		return time.Time{}
	}
	start, _ := clockMinutes(w.Start)
	end, _ := clockMinutes(w.End)
	length := end - start // in wall-clock minutes
	if length <= 0 {
		length += 24 * 60
	}
	lt := t.In(loc)
	var best time.Time
	// From the day before (a window running past midnight) to a week on.
	for i := -1; i <= 8; i++ {
		day := time.Date(lt.Year(), lt.Month(), lt.Day()+i, 0, 0, 0, 0, loc)
		if len(w.Days) > 0 && !slices.Contains(w.Days, day.Weekday()) {
			continue
		}
		open := time.Date(day.Year(), day.Month(), day.Day(), start/60, start%60, 0, 0, loc)
		closeAt := time.Date(day.Year(), day.Month(), day.Day(), (start+length)/60, (start+length)%60, 0, 0, loc)
		if !t.Before(open) && t.Before(closeAt) {
			return t
		}
		if open.After(t) && (best.IsZero() || open.Before(best)) {
			best = open
		}
	}
	return best
}

// Open reports whether the window is open at t.
func (w *UpdateWindow) Open(t time.Time) bool { return w.Next(t).Equal(t) }

// RolloutLimit is at most Count rollouts per Per in one environment.
type RolloutLimit struct {
	Count int           `json:"count"`
	Per   time.Duration `json:"per_ns"`
}

// ParseRolloutLimit parses the --limit flag: "N/DURATION", e.g. "2/24h".
func ParseRolloutLimit(field, s string) (*RolloutLimit, error) {
	n, per, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil {
		return nil, FieldErrorf(EINVALID, field, "limit %q is not N/DURATION; write e.g. 2/24h (at most 2 rollouts per 24 hours in the environment)", s)
	}
	d, err := time.ParseDuration(per)
	if err != nil {
		return nil, FieldErrorf(EINVALID, field, "limit period %q is not a duration; write e.g. 2/24h", per)
	}
	l := &RolloutLimit{Count: count, Per: d}
	return l, l.ValidateField(field)
}

func (l *RolloutLimit) String() string { return fmt.Sprintf("%d/%s", l.Count, ShortDuration(l.Per)) }

// ShortDuration writes a duration without its zero minutes and seconds
// (24h, 90m, 1h30m), as people write a limit's period.
func ShortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Validate checks a limit.
func (l *RolloutLimit) Validate() error { return l.ValidateField("limit") }

// ValidateField checks a limit, naming field in errors.
func (l *RolloutLimit) ValidateField(field string) error {
	if l.Count < 1 {
		return FieldErrorf(EINVALID, field, "a limit of %d rollouts allows none; give 1 or more", l.Count)
	}
	if l.Per < time.Minute {
		return FieldErrorf(EINVALID, field, "limit period %s is shorter than a minute; give e.g. 24h", l.Per)
	}
	return nil
}

// MetricGate is a PromQL query kiln evaluates against a Prometheus server
// after each batch of a rollout: every evaluation during For must give a
// value at or under Max (the largest sample when the query gives several),
// or the rollout rolls back. A query that fails or Prometheus that does
// not answer fails the gate too; a query with no samples passes (there is
// nothing to judge), and the rollout's progress says so.
type MetricGate struct {
	// Prometheus is the server's base URL, "http://127.0.0.1:9090".
	Prometheus string  `json:"prometheus"`
	Query      string  `json:"query"`
	Max        float64 `json:"max"`
	// For is how long the query must stay at or under Max (0: one
	// evaluation).
	For time.Duration `json:"for_ns,omitempty"`
}

// Validate checks a gate.
func (g *MetricGate) Validate() error {
	u, err := url.Parse(g.Prometheus)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return FieldErrorf(EINVALID, "gate.prometheus", "%q is not a Prometheus server's http:// or https:// base URL; write e.g. http://127.0.0.1:9090", g.Prometheus)
	}
	if strings.TrimSpace(g.Query) == "" {
		return FieldErrorf(EINVALID, "gate.query", "a metric gate needs a PromQL query, e.g. sum(rate(kiln_frontend_errors_total{service=\"web\"}[1m])) / sum(rate(kiln_frontend_requests_total{service=\"web\"}[1m]))")
	}
	if g.For < 0 || g.For > time.Hour {
		return FieldErrorf(EINVALID, "gate.for", "gate duration %s must be between 0 and 1h", g.For)
	}
	return nil
}

func (g *MetricGate) String() string {
	s := fmt.Sprintf("%s ≤ %g", g.Query, g.Max)
	if g.For > 0 {
		s += " for " + g.For.String()
	}
	return s + " (" + g.Prometheus + ")"
}

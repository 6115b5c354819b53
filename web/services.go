package web

import (
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/web/chart"
)

// rolloutsPerService is how many of a service's rollouts its page lists.
const rolloutsPerService = 20

type servicesData struct {
	// Enabled is false when the server has no service store.
	Enabled  bool
	Services []serviceRow
	// Environments are the services' environments and those paused or
	// refreshed by kiln serve.
	Environments []envRow
	// Pauses and Auto say whether the server shows pauses and automatic
	// refreshes at all.
	Pauses, Auto bool
}

func (s *Server) servicesPage(w http.ResponseWriter, r *http.Request) {
	const title = "Services"
	d := servicesData{Enabled: s.cfg.Services != nil && s.cfg.Rollouts != nil, Pauses: s.cfg.Pauses != nil, Auto: s.cfg.AutoRefresh != nil}
	if d.Enabled {
		svcs, err := s.cfg.Services.ListServices(r.Context())
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		rs, err := s.cfg.Rollouts.ListRollouts(r.Context(), "", 1000)
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		last := map[string]*kiln.Rollout{}
		for _, ro := range rs { // newest first: keep the first seen
			if last[ro.Service] == nil {
				last[ro.Service] = ro
			}
		}
		if d.Services, d.Environments, err = s.autopilotRows(r.Context(), svcs, last); err != nil {
			s.fail(w, r, title, err)
			return
		}
	}
	s.render(w, r, http.StatusOK, "services", page{Title: title, Nav: "services", Data: d})
}

type serviceData struct {
	Service serviceRow
	// Env is the service's environment: its automatic refresh and pause.
	Env     envRow
	Members []*kiln.Member
	// Instances are the members' inventory records (by instance id), for
	// the configuration each was given; a member not (or no longer) in
	// the inventory is missing.
	Instances map[string]*kiln.Instance
	Proxy     *kiln.ProxyStatus
	Rollouts  []*kiln.Rollout
	// Rollout is the one whose timeline is shown, Timeline nil when it
	// has no samples (or the server keeps none).
	Rollout  *kiln.Rollout
	Timeline *timeline
}

func (s *Server) servicePage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	title := "Service " + name
	ctx := r.Context()
	if s.cfg.Services == nil || s.cfg.Rollouts == nil {
		s.fail(w, r, title, kiln.Errorf(kiln.ENOTFOUND, "this server keeps no services"))
		return
	}
	svc, err := s.cfg.Services.FindService(ctx, name)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	rows, envs, err := s.autopilotRows(ctx, []*kiln.Service{svc}, nil)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d := serviceData{Service: rows[0]}
	for _, e := range envs {
		if e.Name == svc.Environment {
			d.Env = e
		}
	}
	if d.Members, err = s.cfg.Services.ListMembers(ctx, name); err != nil {
		s.fail(w, r, title, err)
		return
	}
	d.Instances = map[string]*kiln.Instance{}
	for _, m := range d.Members {
		switch inst, err := s.cfg.Inventory.FindInstance(ctx, m.InstanceID); {
		case err == nil:
			d.Instances[m.InstanceID] = inst
		case kiln.ErrorCode(err) != kiln.ENOTFOUND:
			s.fail(w, r, title, err)
			return
		}
	}
	switch d.Proxy, err = s.cfg.Services.ProxyStatus(ctx, name); {
	case err == nil:
	case kiln.ErrorCode(err) == kiln.ENOTFOUND:
		d.Proxy = nil
	default:
		s.fail(w, r, title, err)
		return
	}
	if d.Rollouts, err = s.cfg.Rollouts.ListRollouts(ctx, name, rolloutsPerService); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if q := r.URL.Query().Get("rollout"); q != "" {
		id, err := strconv.ParseInt(q, 10, 64)
		if err != nil || id < 1 {
			s.fail(w, r, title, kiln.FieldErrorf(kiln.EINVALID, "rollout", "%q is not a rollout number; pick one from the list", q))
			return
		}
		ro, err := s.cfg.Rollouts.FindRollout(ctx, id)
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		if ro.Service != name {
			s.fail(w, r, title, kiln.Errorf(kiln.ENOTFOUND, "rollout %d is of service %s, not %s", id, ro.Service, name))
			return
		}
		d.Rollout = ro
	} else if len(d.Rollouts) > 0 {
		d.Rollout = d.Rollouts[0]
	}
	if d.Rollout != nil && s.cfg.Timeline != nil {
		ss, err := s.cfg.Timeline.RolloutSamples(ctx, d.Rollout.ID)
		if err != nil {
			s.fail(w, r, title, err)
			return
		}
		d.Timeline = newTimeline(d.Rollout, ss)
	}
	p := page{Title: title, Nav: "services", Data: d}
	if d.Rollout != nil && !d.Rollout.State.Done() {
		p.Refresh = 5
	}
	s.render(w, r, http.StatusOK, "service", p)
}

// maxTimelineSteps bounds the steps a timeline is drawn in: longer
// rollouts are summed into wider steps.
const maxTimelineSteps = 120

// timelineStep is one step of a rollout's timeline: the last sample in it
// and what happened during it.
type timelineStep struct {
	From, To time.Time
	Last     *kiln.RolloutSample
	// Requests and Errors per second over the step; Rates false when the
	// front end's counters cannot give them (no front end, or it
	// restarted).
	Requests, Errors float64
	Rates            bool
	Passed, Failed   int
}

// timeline is a rollout's samples drawn as three charts on one time axis.
type timeline struct {
	Steps    []timelineStep
	Versions []kiln.VersionRef
	// RollbackAt is when the rollout turned back, zero when it did not.
	RollbackAt time.Time
	Instances  template.HTML
	Traffic    template.HTML
	Health     template.HTML
}

// Count returns the instances on v at the end of the step.
func (st timelineStep) Count(v kiln.VersionRef) int {
	for _, c := range st.Last.Versions {
		if c.Version == v {
			return c.Instances
		}
	}
	return 0
}

// newTimeline groups samples (time order) into at most maxTimelineSteps
// steps and draws them; nil without samples.
func newTimeline(ro *kiln.Rollout, ss []*kiln.RolloutSample) *timeline {
	if len(ss) == 0 {
		return nil
	}
	tl := &timeline{}
	start, end := ss[0].At, ss[len(ss)-1].At
	width := max(end.Sub(start)/maxTimelineSteps, time.Second)
	var markers []chart.Marker
	var prev *kiln.RolloutSample
	cur := -1
	for _, s := range ss {
		for _, c := range s.Versions {
			if !containsRef(tl.Versions, c.Version) {
				tl.Versions = append(tl.Versions, c.Version)
			}
		}
		if prev != nil && s.State == prev.State && s.Batch > prev.Batch {
			markers = append(markers, chart.Marker{X: s.At, Label: fmt.Sprintf("batch %d done", s.Batch)})
		}
		if s.State == kiln.RolloutRollingBack && tl.RollbackAt.IsZero() {
			tl.RollbackAt = s.At
			markers = append(markers, chart.Marker{X: s.At, Label: "rollback", Strong: true})
		}
		if i := int(s.At.Sub(start) / width); i != cur {
			from := start
			if n := len(tl.Steps); n > 0 {
				from = tl.Steps[n-1].To
			}
			tl.Steps = append(tl.Steps, timelineStep{From: from})
			cur = i
		}
		st := &tl.Steps[len(tl.Steps)-1]
		st.To, st.Last = s.At, s
		st.Passed += s.HealthPassed
		st.Failed += s.HealthFailed
		prev = s
	}
	for i := range tl.Steps {
		st := &tl.Steps[i]
		if i == 0 {
			continue
		}
		a, b := tl.Steps[i-1].Last, st.Last
		dt := b.At.Sub(a.At).Seconds()
		if a.FrontEndPID != 0 && a.FrontEndPID == b.FrontEndPID && b.Requests >= a.Requests && b.Errors >= a.Errors && dt > 0 {
			st.Requests, st.Errors, st.Rates = float64(b.Requests-a.Requests)/dt, float64(b.Errors-a.Errors)/dt, true
		}
	}
	tl.draw(ro, markers, start, end)
	return tl
}

func containsRef(rs []kiln.VersionRef, r kiln.VersionRef) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func (tl *timeline) draw(ro *kiln.Rollout, markers []chart.Marker, start, end time.Time) {
	what := fmt.Sprintf("rollout %d of %s from %s to %s", ro.ID, ro.Service, orNone(ro.From), ro.To)
	turned := ""
	if !tl.RollbackAt.IsZero() {
		turned = fmt.Sprintf(" It turned back at %s (marked): %s.", tl.RollbackAt.UTC().Format("15:04:05"), ro.Reason)
	}
	inst := chart.LineChart{ID: "timeline-instances", Title: "Instances per version during " + what, From: start, To: end, YLabel: "instances",
		Markers: markers, Height: 200}
	var lasts []string
	for i, v := range tl.Versions {
		sr := chart.Series{Name: v.String(), Class: versionClass(ro, v, i)}
		for _, st := range tl.Steps {
			sr.Points = append(sr.Points, chart.Point{X: st.To, Y: float64(st.Count(v))})
		}
		lasts = append(lasts, fmt.Sprintf("%s %d", v, tl.Steps[len(tl.Steps)-1].Count(v)))
		inst.Series = append(inst.Series, sr)
	}
	inst.Desc = fmt.Sprintf("Active instances of each version over time during %s; dotted lines mark finished batches.%s At the end: %s.", what, turned, orNothing(strings.Join(lasts, ", ")))
	tl.Instances = inst.SVG()

	traffic := chart.LineChart{ID: "timeline-traffic", Title: "Front end requests and errors per second during " + what, From: start, To: end,
		YLabel: "per second", Markers: markers, Height: 200}
	req, errs := chart.Series{Name: "requests/s", Class: 0}, chart.Series{Name: "errors/s", Class: 5}
	for _, st := range tl.Steps {
		if st.Rates {
			req.Points = append(req.Points, chart.Point{X: st.To, Y: st.Requests})
			errs.Points = append(errs.Points, chart.Point{X: st.To, Y: st.Errors})
		}
	}
	traffic.Series = []chart.Series{req, errs}
	traffic.Desc = fmt.Sprintf("Requests and errors (5xx or failed) per second through the service's front end, from its counters, during %s.%s", what, turned)
	if len(req.Points) == 0 {
		traffic.Desc += " The front end reported no counters during it."
	}
	tl.Traffic = traffic.SVG()

	health := chart.Columns{ID: "timeline-health", Title: "Health checks during " + what, From: start, To: end, YLabel: "checks",
		Markers: markers, Height: 160,
		Legend: []chart.LegendItem{{Label: "passed", Class: 2}, {Label: "failed", Pattern: chart.Hatch}}}
	passed, failed := 0, 0
	for _, st := range tl.Steps {
		passed += st.Passed
		failed += st.Failed
		health.Columns = append(health.Columns, chart.Column{From: st.From, To: st.To, Parts: []chart.Segment{
			{Value: float64(st.Passed), Class: 2, Key: "passed", Tip: fmt.Sprintf("%d passed", st.Passed)},
			{Value: float64(st.Failed), Class: 5, Key: "failed", Patterns: []chart.Pattern{chart.Hatch}, Tip: fmt.Sprintf("%d failed", st.Failed)},
		}})
	}
	health.Desc = fmt.Sprintf("Health checks the rollout made of its new instances, %d passed and %d failed, per step of time during %s.%s", passed, failed, what, turned)
	tl.Health = health.SVG()
}

// versionClass colours the versions of a timeline: the one rolled out to
// blue, the one rolled out from orange, others after them.
func versionClass(ro *kiln.Rollout, v kiln.VersionRef, i int) int {
	switch v {
	case ro.To:
		return 0
	case ro.From:
		return 1
	}
	return 3 + i
}

func orNone(r kiln.VersionRef) string {
	if r.IsZero() {
		return "nothing"
	}
	return r.String()
}

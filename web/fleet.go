package web

import (
	"context"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/fleet"
)

// instancesPerPage is the drill-down's page size.
const instancesPerPage = 100

// environments lists every environment with instances or an age policy,
// for the filter menus, with the usage rows of all environments and the
// policies it read them from.
func (s *Server) environments(ctx context.Context) ([]string, []*kiln.Usage, []*kiln.AgePolicy, error) {
	us, err := s.cfg.Fleet.Usage(ctx, kiln.UsageFilter{})
	if err != nil {
		return nil, nil, nil, err
	}
	ps, err := s.cfg.Fleet.AgePolicies(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	var envs []string
	for _, u := range us {
		if u.Environment != "" { // no filter can pick it: "" means all
			envs = append(envs, u.Environment)
		}
	}
	for _, p := range ps {
		envs = append(envs, p.Environment)
	}
	slices.Sort(envs)
	envs = slices.Compact(envs)
	s.menu.mu.Lock()
	s.menu.envs, s.menu.at = envs, time.Now()
	s.menu.mu.Unlock()
	return envs, us, ps, nil
}

// envMenuTTL is how long the environment menu of pages other than the
// report may be out of date; it saves those pages a count of the whole
// fleet.
const envMenuTTL = 30 * time.Second

// envMenu is the environments for a filter menu, at most envMenuTTL old.
type envMenu struct {
	mu   sync.Mutex
	at   time.Time
	envs []string
}

func (s *Server) envMenu(ctx context.Context) ([]string, error) {
	s.menu.mu.Lock()
	envs, fresh := s.menu.envs, time.Since(s.menu.at) < envMenuTTL
	s.menu.mu.Unlock()
	if fresh {
		return envs, nil
	}
	envs, _, _, err := s.environments(ctx)
	return envs, err
}

// envParam reads the env filter. Instances may carry any printable
// environment name, so any is accepted; an unknown one shows an empty
// report.
func envParam(r *http.Request) (string, error) {
	env := r.URL.Query().Get("env")
	if len(env) > 255 || strings.ContainsFunc(env, unicode.IsControl) {
		return "", kiln.FieldErrorf(kiln.EINVALID, "env", "the environment name is too long or contains control characters; pick one from the menu")
	}
	return env, nil
}

type reportData struct {
	Env    string
	Envs   []string
	Report *kiln.Report
	Pager  pager
	// Spread is the version spread chart over every row.
	Spread template.HTML
	// Advisory is the one whose exposure the spread marks, with the
	// advisories offered for it.
	Advisory     string
	Choices      []*kiln.Advisory
	ChoicesTotal int
	Exposed      int
}

func (s *Server) reportPage(w http.ResponseWriter, r *http.Request) {
	const title = "Fleet report"
	env, err := envParam(r)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	// The unfiltered report is built from the rows read for the menu, with
	// the function the API's report uses; a filtered one asks the store
	// for that environment's rows and takes the menu from the cache.
	var envs []string
	var rep *kiln.Report
	if env == "" {
		var us []*kiln.Usage
		var ps []*kiln.AgePolicy
		if envs, us, ps, err = s.environments(r.Context()); err != nil {
			s.fail(w, r, title, err)
			return
		}
		rep = fleet.BuildReport(us, ps, s.cfg.Clock().UTC(), "")
	} else {
		if envs, err = s.envMenu(r.Context()); err != nil {
			s.fail(w, r, title, err)
			return
		}
		if rep, err = s.fleet.Report(r.Context(), env); err != nil {
			s.fail(w, r, title, err)
			return
		}
	}
	d := reportData{Env: env, Envs: envs, Report: rep}
	p := page{Title: title, Nav: "fleet"}
	if err := s.spread(r, &d, &p); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Pager, err = pageRows(s, r, &rep.Rows); err != nil {
		s.fail(w, r, title, err)
		return
	}
	p.Data = d
	s.render(w, r, http.StatusOK, "fleet", p)
}

type instancesData struct {
	Image  string
	Number int
	Env    string
	// Version is nil when the registry does not know it.
	Version   *kiln.Version
	Instances []*kiln.Instance
	Pager     pager
}

// Name is the heading: the version's name, or the image's.
func (d instancesData) Name() string {
	if d.Number > 0 {
		return kiln.VersionRef{Image: d.Image, Number: d.Number}.String()
	}
	return d.Image
}

func (s *Server) instancesPage(w http.ResponseWriter, r *http.Request) {
	const title = "Instances"
	q := r.URL.Query()
	d := instancesData{Image: q.Get("image")}
	var err error
	if d.Env, err = envParam(r); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if err := kiln.ValidateImageName(d.Image); err != nil {
		s.fail(w, r, title, kiln.FieldErrorf(kiln.EINVALID, "image", "pick a row of the fleet report; image %q is not an image name", d.Image))
		return
	}
	if d.Number, err = intParam(q, "version"); err != nil {
		s.fail(w, r, title, err)
		return
	}
	offset, err := intParam(q, "offset")
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	f := kiln.InstanceFilter{Image: d.Image, Environment: d.Env, Limit: instancesPerPage, Offset: offset}
	if d.Number > 0 {
		ref := kiln.VersionRef{Image: d.Image, Number: d.Number}
		f.Version = &ref
		v, err := s.cfg.Registry.FindVersion(r.Context(), ref)
		switch {
		case err == nil:
			d.Version = v
		case kiln.ErrorCode(err) != kiln.ENOTFOUND:
			s.fail(w, r, title, err)
			return
		}
	}
	is, total, err := s.cfg.Inventory.ListInstances(r.Context(), f)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	d.Instances, d.Pager = is, newPager(r.URL, offset, instancesPerPage, total)
	s.render(w, r, http.StatusOK, "instances", page{Title: title + " of " + d.Name(), Nav: "fleet", Data: d})
}

type exposureData struct {
	Advisory string
	Env      string
	Envs     []string
	// Choices are the stored advisories offered in the form.
	Choices      []*kiln.Advisory
	ChoicesTotal int
	// ImageLevel are advisories with fixed-in versions, listed as links.
	ImageLevel []*kiln.Advisory
	Adv        *kiln.Advisory
	Exposure   *kiln.Exposure
	Pager      pager
	// Sources are the advisory sources kiln serve syncs, with their state.
	Sources []*kiln.AdvisoryFeed
}

// maxChoices bounds the advisories offered in the form's list; any other
// id can still be typed.
const maxChoices = 500

func (s *Server) exposurePage(w http.ResponseWriter, r *http.Request) {
	const title = "Exposure"
	ctx := r.Context()
	d := exposureData{Advisory: r.URL.Query().Get("advisory")}
	var err error
	if d.Env, err = envParam(r); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Envs, err = s.envMenu(ctx); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Choices, d.ChoicesTotal, err = s.cfg.Advisories.ListAdvisories(ctx, kiln.AdvisoryFilter{Limit: maxChoices}); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.ImageLevel, _, err = s.cfg.Advisories.ListAdvisories(ctx, kiln.AdvisoryFilter{FixedIn: true, Limit: 100}); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if s.cfg.AdvisorySources != nil {
		if d.Sources, err = s.cfg.AdvisorySources.ListAdvisoryFeeds(ctx); err != nil {
			s.fail(w, r, title, err)
			return
		}
	}
	p := page{Title: title, Nav: "exposure"}
	status := http.StatusOK
	if d.Advisory != "" {
		p.Title = "Exposure to " + d.Advisory
		d.Adv, err = s.cfg.Advisories.FindAdvisory(ctx, d.Advisory)
		if err == nil {
			d.Exposure, err = s.fleet.ExposedTo(ctx, d.Advisory, d.Env)
		}
		if err != nil {
			if c := kiln.ErrorCode(err); c != kiln.ENOTFOUND && c != kiln.EINVALID {
				s.fail(w, r, title, err)
				return
			}
			// Stay on the form, which says what was wrong.
			status, p.Error, d.Adv, d.Exposure = api.HTTPStatus(kiln.ErrorCode(err)), kiln.ErrorMessage(err), nil, nil
		}
	}
	if d.Exposure != nil {
		if d.Pager, err = pageRows(s, r, &d.Exposure.Rows); err != nil {
			s.fail(w, r, title, err)
			return
		}
	}
	p.Data = d
	s.render(w, r, status, "exposure", p)
}

type overageData struct {
	MaxAge   string
	Env      string
	Envs     []string
	Policies []*kiln.AgePolicy
	Overage  *kiln.Overage
	Pager    pager
	// Ages are the age histograms: one for the max age given, else one per
	// environment with a policy.
	Ages []ageChart
}

func (s *Server) overagePage(w http.ResponseWriter, r *http.Request) {
	const title = "Overage"
	ctx := r.Context()
	d := overageData{MaxAge: r.URL.Query().Get("max_age")}
	var err error
	if d.Env, err = envParam(r); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Envs, err = s.envMenu(ctx); err != nil {
		s.fail(w, r, title, err)
		return
	}
	if d.Policies, err = s.cfg.Fleet.AgePolicies(ctx); err != nil {
		s.fail(w, r, title, err)
		return
	}
	p := page{Title: title, Nav: "overage"}
	status := http.StatusOK
	var limit kiln.Age
	if d.MaxAge != "" {
		limit, err = kiln.ParseMaxAge("max_age", d.MaxAge)
	}
	if err == nil && (limit > 0 || len(d.Policies) > 0) {
		// The report the API's overage gives (fleet.BuildOverage on the
		// same rows), and the histograms from those rows.
		var us []*kiln.Usage
		if us, err = s.cfg.Fleet.Usage(ctx, kiln.UsageFilter{Environment: d.Env}); err == nil {
			now := s.cfg.Clock().UTC()
			d.Overage = fleet.BuildOverage(us, limit, d.Policies, now, d.Env)
			d.Ages = ageCharts(us, d.Overage, limit, d.Policies, d.Env, now)
		}
	}
	if err != nil {
		if kiln.ErrorCode(err) != kiln.EINVALID {
			s.fail(w, r, title, err)
			return
		}
		status, p.Error = http.StatusBadRequest, kiln.ErrorMessage(err)
	}
	if d.Overage != nil {
		if d.Pager, err = pageRows(s, r, &d.Overage.Rows); err != nil {
			s.fail(w, r, title, err)
			return
		}
	}
	p.Data = d
	s.render(w, r, status, "overage", p)
}

type staleData struct {
	Env   string
	Envs  []string
	Stale *kiln.Stale
	Pager pager
}

func (s *Server) stalePage(w http.ResponseWriter, r *http.Request) {
	const title = "Stale instances"
	env, err := envParam(r)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	envs, err := s.envMenu(r.Context())
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	st, err := s.fleet.Stale(r.Context(), env)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	pg, err := pageRows(s, r, &st.Rows)
	if err != nil {
		s.fail(w, r, title, err)
		return
	}
	s.render(w, r, http.StatusOK, "stale", page{Title: title, Nav: "stale", Data: staleData{Env: env, Envs: envs, Stale: st, Pager: pg}})
}

package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// MetricsPath serves Prometheus metrics; it needs a viewer token.
const MetricsPath = "/metrics"

// fleetCollector computes the fleet gauges at scrape time from the same
// usage query the reports use, so /metrics and the API agree.
type fleetCollector struct {
	fl     *fleet.Service
	logger interface {
		WarnContext(context.Context, string, ...any)
	}
	instances, exposed, overage, stale, unknown, up *prometheus.Desc
}

func newFleetCollector(fl *fleet.Service, s *Server) *fleetCollector {
	return &fleetCollector{
		fl: fl, logger: s.cfg.Logger,
		instances: prometheus.NewDesc("kiln_fleet_instances", "Instances not destroyed, per image version, environment and version status (lost ones included).",
			[]string{"image", "version", "environment", "status"}, nil),
		exposed: prometheus.NewDesc("kiln_fleet_exposed_instances", "Instances on a version earlier than an image-level advisory's fixed-in version, per advisory.",
			[]string{"advisory"}, nil),
		overage: prometheus.NewDesc("kiln_fleet_overage_instances", "Instances whose version is older than their environment's age policy, per environment.",
			[]string{"environment"}, nil),
		stale: prometheus.NewDesc("kiln_fleet_stale_instances", "Instances older than their image's latest ready version, per image.",
			[]string{"image"}, nil),
		unknown: prometheus.NewDesc("kiln_fleet_unknown_instances", "Instances of versions the registry does not know.", nil, nil),
		up:      prometheus.NewDesc("kiln_fleet_scrape_ok", "1 when the fleet metrics could be computed, else 0.", nil, nil),
	}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.instances, c.exposed, c.overage, c.stale, c.unknown, c.up} {
		ch <- d
	}
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.collect(ctx, ch); err != nil {
		c.logger.WarnContext(ctx, "fleet metrics failed", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
}

func (c *fleetCollector) collect(ctx context.Context, ch chan<- prometheus.Metric) error {
	us, err := c.fl.Fleet.Usage(ctx, kiln.UsageFilter{})
	if err != nil {
		return err
	}
	ps, err := c.fl.Fleet.AgePolicies(ctx)
	if err != nil {
		return err
	}
	advs, _, err := c.fl.Advisories.ListAdvisories(ctx, kiln.AdvisoryFilter{FixedIn: true})
	if err != nil {
		return err
	}
	unknown := 0
	for _, u := range us {
		ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(u.Instances),
			u.Image, strconv.Itoa(u.Number), u.Environment, string(u.Status))
		if !u.Known {
			unknown += u.Instances
		}
	}
	ch <- prometheus.MustNewConstMetric(c.unknown, prometheus.GaugeValue, float64(unknown))
	now := c.fl.Clock().UTC()
	over := map[string]int{}
	for _, p := range ps {
		over[p.Environment] = 0
	}
	for _, r := range fleet.BuildOverage(us, 0, ps, now, "").Rows {
		over[r.Environment] += r.Instances
	}
	for env, n := range over {
		ch <- prometheus.MustNewConstMetric(c.overage, prometheus.GaugeValue, float64(n), env)
	}
	stale := map[string]int{}
	for _, r := range fleet.BuildStale(us, "").Rows {
		stale[r.Image] += r.Instances
	}
	for img, n := range stale {
		ch <- prometheus.MustNewConstMetric(c.stale, prometheus.GaugeValue, float64(n), img)
	}
	for _, a := range advs {
		if !a.Withdrawn.IsZero() {
			continue
		}
		e := fleet.ExposureOf(us, a.FixedIn, "")
		ch <- prometheus.MustNewConstMetric(c.exposed, prometheus.GaugeValue, float64(e.Instances), a.ID)
	}
	return nil
}

// registerMetrics serves /metrics from a registry of its own (no process
// metrics of other packages), behind the viewer role like the reports.
func (s *Server) registerMetrics(fl *fleet.Service) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newFleetCollector(fl, s), s.refusals.answered)
	if s.cfg.AdvisorySources != nil {
		reg.MustRegister(newSourceCollector(s.cfg.AdvisorySources, s))
	}
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
	// Registered like every operation, so refusals are answered, audited
	// and limited by the same middleware, and the route is documented.
	type metricsOut struct{ Body func(huma.Context) }
	register(s, RoleViewer, huma.Operation{
		OperationID: "metrics", Method: http.MethodGet, Path: MetricsPath, Tags: []string{"fleet"},
		Summary: "Fleet gauges in the Prometheus text format",
		Responses: map[string]*huma.Response{"200": {Description: "Prometheus text exposition format",
			Content: map[string]*huma.MediaType{"text/plain": {Schema: &huma.Schema{Type: huma.TypeString}}}}},
	}, func(context.Context, *struct{}) (*metricsOut, error) {
		return &metricsOut{Body: func(hctx huma.Context) {
			r, w := humago.Unwrap(hctx)
			h.ServeHTTP(w, r)
		}}, nil
	})
}

// sourceCollector reports each advisory source's last sync, so an alert
// can say "the tracker has not synced for a day".
type sourceCollector struct {
	sources kiln.AdvisorySourceStore
	logger  interface {
		WarnContext(context.Context, string, ...any)
	}
	lastSuccess, lastError, advisories *prometheus.Desc
}

func newSourceCollector(st kiln.AdvisorySourceStore, s *Server) *sourceCollector {
	label := []string{"source"}
	return &sourceCollector{sources: st, logger: s.cfg.Logger,
		lastSuccess: prometheus.NewDesc("kiln_advisory_source_last_success_timestamp_seconds",
			"When the advisory source last synced (imported, or answered 304), in Unix seconds; 0 when never.", label, nil),
		lastError: prometheus.NewDesc("kiln_advisory_source_last_error",
			"1 when the advisory source's last sync failed (its previous advisories are kept), else 0.", label, nil),
		advisories: prometheus.NewDesc("kiln_advisory_source_advisories",
			"Advisories the advisory source holds in kiln.", label, nil),
	}
}

func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lastSuccess
	ch <- c.lastError
	ch <- c.advisories
}

func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fs, err := c.sources.ListAdvisoryFeeds(ctx)
	if err != nil {
		c.logger.WarnContext(ctx, "advisory source metrics failed", "err", err)
		return
	}
	for _, f := range fs {
		last := 0.0
		if !f.LastSuccess.IsZero() {
			last = float64(f.LastSuccess.Unix())
		}
		failed := 0.0
		if f.LastError != "" {
			failed = 1
		}
		ch <- prometheus.MustNewConstMetric(c.lastSuccess, prometheus.GaugeValue, last, f.Name)
		ch <- prometheus.MustNewConstMetric(c.lastError, prometheus.GaugeValue, failed, f.Name)
		ch <- prometheus.MustNewConstMetric(c.advisories, prometheus.GaugeValue, float64(f.Advisories), f.Name)
	}
}

package rollout

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the front end's /metrics handler (Prometheus text format):
// the service's requests and failed requests (502/503 from the front end
// or 5xx from an instance) since the front end started, as counters, and
// its backends and applied generation as gauges, each labelled
// service="NAME". A metric gate's query reads them, e.g.
//
//	sum(rate(kiln_frontend_errors_total{service="web"}[30s]))
//	  / sum(rate(kiln_frontend_requests_total{service="web"}[30s]))
func Metrics(service string, p *Proxy, generation func() int64) http.Handler {
	reg := prometheus.NewRegistry()
	labels := prometheus.Labels{"service": service}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kiln_frontend_requests_total", ConstLabels: labels,
			Help: "Requests the service's front end received."}, func() float64 { r, _ := p.Stats(); return float64(r) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "kiln_frontend_errors_total", ConstLabels: labels,
			Help: "Requests that failed: no instance reachable (502/503 from the front end) or a 5xx answer from an instance."},
			func() float64 { _, e := p.Stats(); return float64(e) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kiln_frontend_backends", ConstLabels: labels,
			Help: "Instances in the front end's backend set."}, func() float64 { return float64(len(p.Backends())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "kiln_frontend_generation", ConstLabels: labels,
			Help: "The service's backend-set generation the front end serves."}, func() float64 { return float64(generation()) }),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

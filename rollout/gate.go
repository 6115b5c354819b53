package rollout

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/kiln-project/kiln"
)

// Gate evaluates a service's metric gate after a batch: nil when it
// passes, an error that says why (and rolls the rollout back) when not.
type Gate interface {
	Check(ctx context.Context, g *kiln.MetricGate, say func(format string, args ...any)) error
}

// PrometheusGate evaluates metric gates with Prometheus's HTTP API
// (/api/v1/query).
type PrometheusGate struct {
	// Client is the HTTP client for Prometheus; nil uses one with a 10 s
	// timeout per query.
	Client *http.Client
	// Every is how often the query is evaluated during the gate's For;
	// 0 is a tenth of For, between 500 ms and 5 s.
	Every time.Duration
}

var _ Gate = (*PrometheusGate)(nil)

// Check implements Gate: the query is evaluated at once and then every
// Every until For has passed; any evaluation above Max, a failed query or
// a result that is not a number fails the gate; no samples (or NaN, a
// ratio over no requests) judge nothing.
func (p *PrometheusGate) Check(ctx context.Context, g *kiln.MetricGate, say func(string, ...any)) error {
	hc := p.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	c, err := api.NewClient(api.Config{Address: g.Prometheus, Client: hc})
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, "gate.prometheus", "metric gate: %v", err)
	}
	q := promv1.NewAPI(c)
	every := p.Every
	if every <= 0 {
		every = min(max(g.For/10, 500*time.Millisecond), 5*time.Second)
	}
	say("    metric gate: %s", g)
	end := time.Now().Add(g.For)
	for n := 0; ; n++ {
		v, empty, err := evaluate(ctx, q, g.Query)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return kiln.Errorf(kiln.EUNAVAILABLE, "metric gate failed: Prometheus at %s could not evaluate %q: %v", g.Prometheus, g.Query, err)
		case empty:
			if n == 0 {
				say("    metric gate: the query has no samples yet; nothing to judge")
			}
		case v > g.Max:
			return kiln.Errorf(kiln.EUNAVAILABLE, "metric gate failed: %s = %g, above its maximum %g (Prometheus %s)", g.Query, v, g.Max, g.Prometheus)
		}
		if !time.Now().Add(every).Before(end) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
	say("    metric gate passed")
	return nil
}

// evaluate runs an instant query and returns its largest sample; empty is
// true for a vector without samples.
func evaluate(ctx context.Context, q promv1.API, query string) (v float64, empty bool, err error) {
	val, _, _, err := q.Query(ctx, query, time.Now())
	if err != nil {
		return 0, false, err
	}
	switch r := val.(type) {
	case *model.Scalar:
		return float64(r.Value), math.IsNaN(float64(r.Value)), nil
	case model.Vector:
		if len(r) == 0 {
			return 0, true, nil
		}
		// NaN (0/0: a ratio over no requests) judges nothing.
		v, empty = math.Inf(-1), true
		for _, s := range r {
			if f := float64(s.Value); !math.IsNaN(f) {
				v, empty = max(v, f), false
			}
		}
		return v, empty, nil
	default:
		return 0, false, fmt.Errorf("the query gives a %s, not a number or an instant vector; write an instant query (e.g. wrap a range in rate())", strings.ToLower(val.Type().String()))
	}
}

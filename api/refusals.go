package api

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	kiln "github.com/kiln-project/kiln"
)

// Defaults for refused requests (401/403) per source address: once a
// source has been refused more than the burst, and faster than the rate,
// its further refusals are answered 429. A request with a valid token is
// never limited by this.
const (
	DefaultRefusalRate   = 5  // per second, sustained
	DefaultRefusalBurst  = 60 // at once
	DefaultRefusalWindow = time.Minute
)

// UnknownRoute is the audit target of a refusal whose route is not known
// (the raw request path is never recorded: the caller chooses it).
const UnknownRoute = "unknown route"

// maxRefusalKeys bounds the refusals folded at once; beyond it, new
// (source, actor, route, reason) combinations are only counted together.
const maxRefusalKeys = 10000

// refusalKey is what refusals are folded by.
type refusalKey struct{ source, actor, route, reason string }

type refusalWindow struct {
	start   time.Time
	first   bool // the first refusal was audited at once
	more    int  // refusals counted (after the first, when it was audited)
	limited int  // of which answered 429
}

// refusals audits refused requests without letting anyone grow the audit
// log at will: the first refusal of a (source, actor, route, reason) is
// appended at once; the ones that follow within the window are counted in
// memory and appended as one entry ("N more refusals") when the window
// closes or the server closes. Sources refused too often get 429.
type refusals struct {
	audit  kiln.AuditLog
	logger *slog.Logger
	limit  *limiter
	window time.Duration

	mu       sync.Mutex
	open     map[refusalKey]*refusalWindow
	overflow refusalWindow // refusals beyond maxRefusalKeys
	timer    *time.Timer
	closed   bool

	answered *prometheus.CounterVec
}

func newRefusals(cfg Config) *refusals {
	rate, burst, window := cfg.RefusalRate, cfg.RefusalBurst, cfg.RefusalWindow
	switch {
	case rate == 0:
		rate, burst = DefaultRefusalRate, DefaultRefusalBurst
	case burst == 0:
		burst = int(rate)
	}
	if window <= 0 {
		window = DefaultRefusalWindow
	}
	return &refusals{audit: cfg.Audit, logger: cfg.Logger, limit: newLimiter(rate, burst), window: window,
		open: map[refusalKey]*refusalWindow{},
		answered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kiln_api_refused_requests_total",
			Help: "Requests refused for their credentials, by answer: 401, 403, or 429 when the source address was refused too often.",
		}, []string{"status"})}
}

// limitKey is the bucket of a source address: the address, or its /64
// for IPv6 (one host usually holds a whole /64).
func limitKey(source string) string {
	ip := net.ParseIP(source)
	if ip == nil || ip.To4() != nil {
		return source
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// refuse records one refused request and reports whether its source is
// over the limit (the caller then answers 429 instead of status).
func (r *refusals) refuse(ctx context.Context, actor, route, reason string, status int) (time.Duration, bool) {
	if route == "" {
		route = UnknownRoute
	}
	src := kiln.SourceFrom(ctx)
	now := time.Now()
	var wait time.Duration
	limited := false
	if r.limit != nil {
		wait, limited = r.limit.allow(limitKey(src), now)
		limited = !limited
	}
	if limited {
		r.answered.WithLabelValues(strconv.Itoa(http.StatusTooManyRequests)).Inc()
	} else {
		r.answered.WithLabelValues(strconv.Itoa(status)).Inc()
	}
	k := refusalKey{source: src, actor: actor, route: route, reason: reason}
	r.mu.Lock()
	w, seen := r.open[k]
	switch {
	case r.closed:
		seen = false // nothing folds after Close: audit it directly
	case seen:
		w.count(limited)
	case len(r.open) >= maxRefusalKeys:
		r.overflow.count(limited)
		seen = true
	case limited:
		// A source over its limit gets no entry of its own at once.
		w = &refusalWindow{start: now}
		w.count(true)
		r.open[k] = w
		seen = true
	default:
		r.open[k] = &refusalWindow{start: now, first: true}
	}
	if !r.closed && r.timer == nil {
		r.timer = time.AfterFunc(r.window, r.flushDue)
	}
	r.mu.Unlock()
	if !seen {
		r.append(ctx, &kiln.AuditEntry{Actor: actor, Action: "api.denied", Target: route, Detail: reason,
			Source: src, Result: kiln.AuditDenied})
	}
	return wait, limited
}

func (w *refusalWindow) count(limited bool) {
	w.more++
	if limited {
		w.limited++
	}
}

// flushDue appends the windows that have closed and re-arms the timer
// while others are open.
func (r *refusals) flushDue() { r.flush(time.Now(), false) }

// Close appends every open window: nothing counted is lost at shutdown.
// Later refusals are audited one by one.
func (r *refusals) Close() { r.flush(time.Now(), true) }

func (r *refusals) flush(now time.Time, all bool) {
	type due struct {
		k refusalKey
		w refusalWindow
	}
	var ds []due
	r.mu.Lock()
	if all {
		r.closed = true
	}
	for k, w := range r.open {
		if all || now.Sub(w.start) >= r.window {
			ds = append(ds, due{k, *w})
			delete(r.open, k)
		}
	}
	if r.overflow.more > 0 && (all || len(r.open) == 0) {
		ds = append(ds, due{refusalKey{source: "many sources", actor: "many actors", route: "many routes", reason: "refused"}, r.overflow})
		r.overflow = refusalWindow{}
	}
	r.timer = nil
	if !r.closed && (len(r.open) > 0 || r.overflow.more > 0) {
		next := r.window
		for _, w := range r.open {
			next = min(next, max(w.start.Add(r.window).Sub(now), time.Second))
		}
		r.timer = time.AfterFunc(next, r.flushDue)
	}
	r.mu.Unlock()
	for _, d := range ds {
		if d.w.more == 0 {
			continue
		}
		more := ""
		if d.w.first {
			more = "more "
		}
		detail := fmt.Sprintf("%s: %d %srefusals since %s", d.k.reason, d.w.more, more, d.w.start.UTC().Format(time.RFC3339))
		if d.w.limited > 0 {
			detail += fmt.Sprintf(" (%d answered 429)", d.w.limited)
		}
		ctx := kiln.WithSource(context.Background(), d.k.source)
		r.append(ctx, &kiln.AuditEntry{Actor: d.k.actor, Action: "api.denied", Target: d.k.route, Detail: detail,
			Source: d.k.source, Result: kiln.AuditDenied})
	}
}

func (r *refusals) append(ctx context.Context, e *kiln.AuditEntry) {
	if r.audit == nil {
		return
	}
	if err := r.audit.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		r.logger.ErrorContext(ctx, "api: cannot audit a denied request", "target", e.Target, "actor", e.Actor, "err", err)
	}
}

// Close appends the refusals still counted in memory to the audit log;
// call it after the HTTP server has stopped and before the audit log's
// database closes.
func (s *Server) Close() error {
	s.refusals.Close()
	return nil
}

// deny audits a refused request (folded, see refusals) and answers it:
// status with body, or 429 when its source has been refused too often.
// The credentials and the raw path are never recorded; route is the
// operation's template ("GET /api/v1/images/{image}").
func (s *Server) deny(ctx context.Context, w http.ResponseWriter, actor, route, reason string, body *ErrorBody) {
	if wait, limited := s.refusals.refuse(ctx, actor, route, reason, body.HTTPStatus); limited {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(w, &ErrorBody{HTTPStatus: http.StatusTooManyRequests, Code: kiln.EUNAVAILABLE,
			Message: fmt.Sprintf("too many refused requests from %s; retry after %s with a valid token", kiln.SourceFrom(ctx), wait.Round(time.Millisecond))})
		return
	}
	if body.HTTPStatus == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kiln"`)
	}
	writeError(w, body)
}

package rollout

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy is a service's front end: an HTTP reverse proxy that balances
// requests round-robin over a backend set that can be swapped while it
// serves. A request that cannot reach its backend (connection refused or
// reset, no response) is retried on the next backends, so a backend that
// is draining or has just died fails no request as long as another answers.
type Proxy struct {
	log      *slog.Logger
	rp       *httputil.ReverseProxy
	mu       sync.Mutex // serialises SetBackends
	set      atomic.Pointer[[]*backend]
	next     atomic.Uint64
	requests atomic.Int64
	errors   atomic.Int64
}

// backend is one instance's address and its requests in flight.
type backend struct {
	addr     string
	inflight atomic.Int64
}

// maxAttempts bounds how many backends one request tries.
const maxAttempts = 4

// NewProxy returns a proxy with no backends (it answers 503 until SetBackends).
func NewProxy(log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Proxy{log: log}
	empty := []*backend{}
	p.set.Store(&empty)
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       30 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = "backend" // the balancer picks the real one
			r.SetXForwarded()
		},
		Transport: &balancer{p: p, tr: tr},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode >= 500 {
				p.errors.Add(1)
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.errors.Add(1)
			status := http.StatusBadGateway
			if errors.Is(err, errNoBackends) {
				status = http.StatusServiceUnavailable
			}
			p.log.Warn("front end: request failed", "path", r.URL.Path, "err", err)
			http.Error(w, http.StatusText(status)+": "+err.Error(), status)
		},
	}
	return p
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	p.rp.ServeHTTP(w, r)
}

// Stats returns the requests served and those that failed (5xx) so far.
func (p *Proxy) Stats() (requests, errs int64) { return p.requests.Load(), p.errors.Load() }

// Backends returns the addresses in the current set.
func (p *Proxy) Backends() []string {
	var out []string
	for _, b := range *p.set.Load() {
		out = append(out, b.addr)
	}
	return out
}

// SetBackends replaces the backend set and returns once no request is in
// flight to a removed backend any more (or ctx ends): after it returns, a
// removed backend may be destroyed.
func (p *Proxy) SetBackends(ctx context.Context, addrs []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.set.Load()
	next := make([]*backend, 0, len(addrs))
	for _, a := range addrs {
		i := slices.IndexFunc(old, func(b *backend) bool { return b.addr == a })
		if i >= 0 {
			next = append(next, old[i])
		} else {
			next = append(next, &backend{addr: a})
		}
	}
	p.set.Store(&next)
	var removed []*backend
	for _, b := range old {
		if !slices.Contains(addrs, b.addr) {
			removed = append(removed, b)
		}
	}
	for _, b := range removed {
		for b.inflight.Load() > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	if len(removed) > 0 || len(next) != len(old) {
		p.log.Info("front end: backends changed", "backends", addrs)
	}
	return nil
}

var errNoBackends = errors.New("the service has no healthy instance in its front end")

// balancer is the proxy's transport: it picks a backend per attempt and
// moves on to the next one when a backend cannot be reached.
type balancer struct {
	p  *Proxy
	tr *http.Transport
}

func (b *balancer) RoundTrip(req *http.Request) (*http.Response, error) {
	set := *b.p.set.Load()
	if len(set) == 0 {
		return nil, errNoBackends
	}
	// A body can be sent again only if it can be re-read.
	replayable := req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
	start := int(b.p.next.Add(1))
	var lastErr error
	for i := 0; i < min(len(set), maxAttempts); i++ {
		be := set[(start+i)%len(set)]
		out := req.Clone(req.Context())
		out.URL.Host = be.addr
		out.Host = req.Host
		if i > 0 && req.GetBody != nil {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			out.Body = body
		}
		be.inflight.Add(1)
		resp, err := b.tr.RoundTrip(out)
		if err == nil {
			resp.Body = &countedBody{ReadCloser: resp.Body, be: be}
			return resp, nil
		}
		be.inflight.Add(-1)
		lastErr = err
		if req.Context().Err() != nil || !replayable {
			break
		}
		b.p.log.Debug("front end: backend unreachable, trying the next", "backend", be.addr, "err", err)
	}
	return nil, lastErr
}

// countedBody keeps the backend's in-flight count until the response body
// has been read and closed.
type countedBody struct {
	io.ReadCloser
	be   *backend
	once sync.Once
}

func (c *countedBody) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(func() { c.be.inflight.Add(-1) })
	return err
}

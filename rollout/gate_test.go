package rollout

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
)

// httpPlatform is the in-memory platform whose instances are small HTTP
// servers on loopback: /healthz answers 200, and / answers with the
// version's body, or 500 for the versions in failing.
type httpPlatform struct {
	*memory.Platform
	failing map[int]bool
	mu      sync.Mutex
	servers map[string]*http.Server
}

func newHTTPPlatform(t *testing.T, failing ...int) *httpPlatform {
	p := &httpPlatform{Platform: memory.New(), failing: map[int]bool{}, servers: map[string]*http.Server{}}
	for _, n := range failing {
		p.failing[n] = true
	}
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, s := range p.servers {
			s.Close()
		}
	})
	return p
}

func (p *httpPlatform) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	res, err := p.Platform.Launch(ctx, spec)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	fail := p.failing[spec.Version.Number]
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		if fail {
			http.Error(w, "broken", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "version %d\n", spec.Version.Number)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l) //nolint:errcheck // closed by Destroy or the test's end
	p.mu.Lock()
	p.servers[spec.ID] = srv
	p.mu.Unlock()
	res.Ports[0].Host = l.Addr().String()
	return res, nil
}

func (p *httpPlatform) Destroy(ctx context.Context, id string) error {
	p.mu.Lock()
	if s := p.servers[id]; s != nil {
		s.Close()
		delete(p.servers, id)
	}
	p.mu.Unlock()
	return p.Platform.Destroy(ctx, id)
}

// addVersion records version n of appserver, ready.
func (env *hostEnv) addVersion(t *testing.T) kiln.VersionRef {
	t.Helper()
	ctx := opCtx()
	art := &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("b", 64)}
	v, err := env.db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := env.db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
			t.Fatal(err)
		}
	}
	return v.Ref()
}

// runFrontEnd runs the service's real front end in this process on free
// loopback ports until the test ends; it returns its address and the
// address of its /metrics.
func runFrontEnd(t *testing.T, env *hostEnv, service string) (front, metrics string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	fe := &FrontEnd{Services: env.db, Service: service, Listener: ln, MetricsListener: mln, Poll: 20 * time.Millisecond}
	go func() { done <- fe.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("front end: %v", err)
		}
	})
	return ln.Addr().String(), mln.Addr().String()
}

// startPrometheus runs Debian's prometheus on loopback with a temporary
// configuration scraping targets every second, until the test ends; it
// returns its base URL once it is ready.
func startPrometheus(t *testing.T, targets ...string) string {
	t.Helper()
	bin := ci.Tool(t, "prometheus", "prometheus")
	dir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kiln-frontend\n    static_configs:\n      - targets: ['%s']\n",
		strings.Join(targets, "', '"))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	base := "http://" + addr
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus exited: %s", b)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("prometheus not ready within a minute: %s", b)
		}
	}
}

// loadLoop sends requests through the front end until stopped, counting
// answers by status class.
type loadLoop struct {
	ok, failed atomic.Int64
	stop       func()
}

func startLoadLoop(front string) *loadLoop {
	l := &loadLoop{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c := &http.Client{Timeout: 5 * time.Second}
		for ctx.Err() == nil {
			resp, err := c.Get("http://" + front + "/")
			if err == nil {
				io.Copy(io.Discard, resp.Body) //nolint:errcheck
				resp.Body.Close()
			}
			if err != nil || resp.StatusCode >= 500 {
				l.failed.Add(1)
			} else {
				l.ok.Add(1)
			}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	l.stop = func() { cancel(); <-done }
	return l
}

// A rollout whose new instances pass their health checks but answer 500
// is rolled back by its metric gate: Debian's prometheus scrapes the real
// front end's /metrics, and the gate's query over it crosses its maximum
// after the first batch. The rollout to a good version passes the same
// gate.
func TestMetricGateRollsBack(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	v1 := kiln.VersionRef{Image: "appserver", Number: 1}
	v2 := env.addVersion(t)
	plat := newHTTPPlatform(t, v2.Number)
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "gated", Image: "appserver", Environment: "prod", Replicas: 2, MaxSurge: 1,
		Listen: "127.0.0.1:3", Health: kiln.HealthCheck{Kind: kiln.HealthHTTP, Path: "/healthz"}, MaxErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	front, metrics := runFrontEnd(t, env, "gated")
	prom := startPrometheus(t, metrics)
	svc, err := env.db.FindService(ctx, "gated")
	if err != nil {
		t.Fatal(err)
	}
	svc.Policy.Gate = &kiln.MetricGate{Prometheus: prom, Max: 0.05, For: 8 * time.Second,
		Query: `sum(rate(kiln_frontend_errors_total{service="gated"}[4s])) / sum(rate(kiln_frontend_requests_total{service="gated"}[4s]))`}
	if err := env.db.UpdateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Progress: testWriter{t},
		Launcher:      &launch.Launcher{Registry: env.db, Platform: plat, Inventory: env.db, Key: env.key},
		HealthTimeout: 5 * time.Second, DrainTimeout: 10 * time.Second, Gate: &PrometheusGate{Every: 500 * time.Millisecond}}

	load := startLoadLoop(front)
	defer load.stop()
	r, err := e.Start(ctx, "gated", v1, Options{})
	if err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("rollout to the good version: %+v %v", r, err)
	}
	if load.ok.Load() == 0 {
		t.Fatal("the load saw no successful request through the front end")
	}
	r, err = e.Start(ctx, "gated", v2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != kiln.RolloutRolledBack || !strings.Contains(r.Reason, "metric gate failed") || !strings.Contains(r.Reason, "above its maximum 0.05") {
		t.Fatalf("rollout to the version that answers 500: %s (%s); want rolled back by the metric gate", r.State, r.Reason)
	}
	ms, err := env.db.ListMembers(ctx, "gated")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version != v1 || m.State != kiln.MemberActive {
			t.Errorf("after the rollback: member %s runs %s (%s); want %s active", m.InstanceID, m.Version, m.State, v1)
		}
	}
	if len(ms) != 2 {
		t.Errorf("after the rollback: %d members, want 2", len(ms))
	}
	// The front end's /metrics is what Prometheus read.
	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`kiln_frontend_requests_total{service="gated"}`, `kiln_frontend_errors_total{service="gated"}`, `kiln_frontend_backends{service="gated"} 2`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, b)
		}
	}
}

package api

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// checkinServer is a server on a fresh SQLite registry holding appserver-1,
// with agent tokens "agent-a" and "agent-b".
func checkinServer(t testing.TB, cfg Config, adjust ...func(*store.DB, *Config)) (*Server, *httptest.Server, map[string]string) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
		t.Fatal(err)
	}
	toks := map[string]string{}
	for _, name := range []string{"agent-a", "agent-b"} {
		_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: name, Role: kiln.RoleAgent})
		if err != nil {
			t.Fatal(err)
		}
		toks[name] = secret
	}
	cfg = cfg.WithStores(db)
	for _, f := range adjust {
		f(db, &cfg)
	}
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts, toks
}

func checkin(t testing.TB, client *http.Client, url, token string, n int64) *http.Response {
	body := fmt.Sprintf(`{"instance_id":"web-%d","hostname":"web-%d","release":{"image":"appserver","version":"1"}}`, n, n)
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// Check-ins are limited per token: a token over its burst gets 429 with
// Retry-After, while another token goes on.
func TestCheckinRateLimit(t *testing.T) {
	_, ts, toks := checkinServer(t, Config{CheckinRate: 0.5, CheckinBurst: 2})
	url := ts.URL + fleet.CheckinPath
	for i := range 2 {
		resp := checkin(t, ts.Client(), url, toks["agent-a"], int64(i))
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("check-in %d: %d", i, resp.StatusCode)
		}
	}
	resp := checkin(t, ts.Client(), url, toks["agent-a"], 3)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp = checkin(t, ts.Client(), url, toks["agent-b"], 4)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("another token: %d", resp.StatusCode)
	}
}

func TestLimiterRefills(t *testing.T) {
	l := newLimiter(10, 1)
	now := time.Unix(0, 0)
	if _, ok := l.allow("a", now); !ok {
		t.Fatal("first request refused")
	}
	wait, ok := l.allow("a", now)
	if ok || wait <= 0 || wait > 100*time.Millisecond {
		t.Fatalf("second at once: ok=%v wait=%v", ok, wait)
	}
	if _, ok := l.allow("a", now.Add(100*time.Millisecond)); !ok {
		t.Fatal("refused after refill")
	}
	if newLimiter(-1, 0) != nil {
		t.Fatal("a negative rate should mean no limiter")
	}
}

// BenchmarkCheckinAuth compares check-ins through the real handler with an
// agent token against the same check-in on a public route (no auth), over
// loopback HTTP, on SQLite, 32 clients per CPU, check-ins batched as
// kiln serve does (fleet.Batcher). The difference is the cost of
// authentication; "authenticate" is the token lookup alone.
func BenchmarkCheckinAuth(b *testing.B) {
	var batcher *fleet.Batcher
	s, ts, toks := checkinServer(b, Config{CheckinRate: -1}, func(db *store.DB, cfg *Config) {
		batcher = fleet.NewBatcher(db, 256)
		b.Cleanup(batcher.Close)
		cfg.Checkins = batcher
	})
	rec := CheckinRecorder(batcher)
	register(s, RolePublic, huma.Operation{
		OperationID: "bench-open-checkin", Method: http.MethodPost, Path: "/bench/checkin",
	}, func(ctx context.Context, in *checkinIn) (*checkinOut, error) {
		return checkIn(ctx, rec, in)
	})
	// The middleware alone: the same empty operation, public and behind
	// the agent role, served in process (no network, no database write).
	type noop struct{ Body struct{ OK bool } }
	for _, role := range []Role{RolePublic, RoleAgent} {
		register(s, role, huma.Operation{OperationID: "bench-noop-" + string(role), Method: http.MethodPost, Path: "/bench/noop/" + string(role)},
			func(context.Context, *struct{}) (*noop, error) { return &noop{}, nil })
	}
	for _, c := range []struct{ name, path, token string }{
		{"middleware-public", "/bench/noop/public", ""},
		{"middleware-token", "/bench/noop/agent", toks["agent-a"]},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", c.path, nil)
					if c.token != "" {
						req.Header.Set("Authorization", "Bearer "+c.token)
					}
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req)
					if w.Code != 200 {
						b.Fatalf("%s: %d %s", c.path, w.Code, w.Body)
					}
				}
			})
		})
	}
	b.Run("authenticate-uncached", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.cfg.Tokens.Authenticate(context.Background(), toks["agent-a"]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	// Keep a connection per client, as agents on many machines would.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	var n atomic.Int64
	for _, c := range []struct{ name, path, token string }{
		{"unauthenticated", "/bench/checkin", ""},
		{"token", fleet.CheckinPath, toks["agent-a"]},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetParallelism(32)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// 1000 instances checking in again and again.
					resp := checkin(b, client, ts.URL+c.path, c.token, n.Add(1)%1000)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("check-in: %d", resp.StatusCode)
					}
				}
			})
		})
	}
}

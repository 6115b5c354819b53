package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

// A flood of anonymous requests with long paths grows the audit log by a
// few rows (the route template, never the path; repeated refusals folded
// into one entry with a count), is answered 429 once over the per-source
// limit, and the 429s show in /metrics.
func TestRefusalFloodIsBounded(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir(), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	srv := api.New(api.Config{CheckinRate: -1}.WithStores(db))
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	_, viewer, err := db.CreateToken(kiln.WithActor(ctx, "local:test"), &kiln.NewToken{Name: "dash", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	before, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}

	long := strings.Repeat("A", 900)
	const workers, each = 4, 500
	var n401, n429, other atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				resp, err := http.Get(ts.URL + "/api/v1/images/" + long)
				if err != nil {
					other.Add(1)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				switch {
				case resp.StatusCode == 401:
					n401.Add(1)
				case resp.StatusCode == 429 && strings.Contains(string(body), `"code":"unavailable"`) && resp.Header.Get("Retry-After") != "":
					n429.Add(1)
				default:
					other.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n401.Load() == 0 || n429.Load() == 0 || other.Load() != 0 || n401.Load()+n429.Load() != workers*each {
		t.Fatalf("answers: %d 401, %d 429, %d other", n401.Load(), n429.Load(), other.Load())
	}
	// A valid token from the same address is not limited.
	if code, m := doAs(t, ts, viewer, "GET", "/api/v1/images", ""); code != 200 {
		t.Fatalf("viewer after the flood: %d %v", code, m)
	}
	metrics := getAs(t, ts, viewer, "/metrics")
	if !strings.Contains(metrics, `kiln_api_refused_requests_total{status="429"}`) ||
		!strings.Contains(metrics, `kiln_api_refused_requests_total{status="401"}`) {
		t.Fatalf("/metrics does not count the refusals:\n%s", metrics)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	grown := after[len(before):]
	if len(grown) > 3 {
		t.Fatalf("the flood appended %d audit entries, want at most 3", len(grown))
	}
	folded := false
	for _, e := range grown {
		if strings.Contains(e.Target+e.Detail, "AAAA") {
			t.Errorf("audit entry records the raw path: %+v", e)
		}
		if e.Target != "GET /api/v1/images/{image}" || e.Actor != "anonymous" || e.Source != "127.0.0.1" {
			t.Errorf("entry %+v: want the route template, anonymous, 127.0.0.1", e)
		}
		folded = folded || strings.HasPrefix(e.Detail, "unauthorized: 1999 more refusals since ")
	}
	if !folded {
		t.Errorf("no entry counts the folded refusals: %+v", grown)
	}
	if c, err := db.VerifyAudit(ctx); err != nil || len(c.Problems) > 0 {
		t.Fatalf("verify: %v %v", c, err)
	}
}

func getAs(t *testing.T, ts *httptest.Server, token, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", ts.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return string(b)
}

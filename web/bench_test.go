package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/web"
)

func benchSize(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkPages renders the fleet pages over a synthetic fleet on SQLite
// (KILN_BENCH_INSTANCES, default 100,000; KILN_BENCH_VERSIONS, default
// 1,000): the store's counting, the report and the HTML together.
//
//	go test -run '^$' -bench Pages ./web/
func BenchmarkPages(b *testing.B) {
	ctx := kiln.WithActor(context.Background(), "local:bench")
	clock := fleet.NewSynthClock(time.Now().UTC())
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, "", b.TempDir(), logger, clock.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	cfg := fleet.SynthConfig{Images: 10, Versions: benchSize("KILN_BENCH_VERSIONS", 1000),
		Instances: benchSize("KILN_BENCH_INSTANCES", 100_000), Advisories: 5,
		Envs: []string{"dev", "staging", "prod"}, Seed: 1, Span: 365 * 24 * time.Hour}
	if err := fleet.Synthesize(ctx, db, clock, cfg); err != nil {
		b.Fatal(err)
	}
	if err := db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: kiln.AgeOf(90 * 24 * time.Hour)}); err != nil {
		b.Fatal(err)
	}
	advs, _, err := db.ListAdvisories(ctx, kiln.AdvisoryFilter{Limit: 1})
	if err != nil || len(advs) == 0 {
		b.Fatalf("synthetic advisories: %v", err)
	}
	tok, _, err := db.CreateToken(ctx, &kiln.NewToken{Name: "bench", Role: kiln.RoleViewer})
	if err != nil {
		b.Fatal(err)
	}
	session, err := db.CreateSession(ctx, tok, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	dash, err := web.New(web.Config{Registry: db, Inventory: db, Fleet: db, Advisories: db, Runs: db, Tokens: db, Logger: logger, Clock: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	// The store's part alone, for comparison: one count of all instances
	// by version and environment.
	b.Run("usage-only", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.Usage(ctx, kiln.UsageFilter{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct{ name, path string }{
		{"report", "/ui/fleet"},
		{"report-env", "/ui/fleet?env=prod"},
		{"exposure", "/ui/exposure?advisory=" + url.QueryEscape(advs[0].ID)},
		{"overage", "/ui/overage?max_age=90d"},
		{"drill-down", "/ui/fleet/instances?image=img-000"},
	} {
		path := bc.path
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.AddCookie(&http.Cookie{Name: "kiln_session", Value: session})
				rec := httptest.NewRecorder()
				dash.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
				}
			}
		})
	}
}

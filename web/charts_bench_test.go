package web_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/web"
)

// BenchmarkChartPages renders the pages with pictures over a synthetic
// fleet on SQLite: 100 image lines, KILN_BENCH_VERSIONS versions (default
// 10,000) and KILN_BENCH_INSTANCES instances (default 1,000,000; the setup
// then takes minutes), with 90-day and 100-day age limits and today's
// fleet counts recorded. Each figure is the whole request: the store's
// counting, the report, the charts and the HTML.
//
//	go test -run '^$' -bench ChartPages -benchtime 10x ./web/
func BenchmarkChartPages(b *testing.B) {
	ctx := kiln.WithActor(context.Background(), "local:bench")
	clock := fleet.NewSynthClock(time.Now().UTC())
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, "", b.TempDir(), logger, clock.Now)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	cfg := fleet.SynthConfig{Images: 100, Versions: benchSize("KILN_BENCH_VERSIONS", 10_000),
		Instances: benchSize("KILN_BENCH_INSTANCES", 1_000_000), Advisories: 50,
		Envs: []string{"dev", "staging", "prod"}, Seed: 1, Span: 365 * 24 * time.Hour}
	t0 := time.Now()
	if err := fleet.Synthesize(ctx, db, clock, cfg); err != nil {
		b.Fatal(err)
	}
	b.Logf("synthesized %d versions and %d instances in %s", cfg.Versions, cfg.Instances, time.Since(t0).Round(time.Second))
	for env, days := range map[string]int{"prod": 90, "staging": 100} {
		if err := db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: env, MaxAge: kiln.AgeOf(time.Duration(days) * 24 * time.Hour)}); err != nil {
			b.Fatal(err)
		}
	}
	fl := fleet.New(db, db)
	fl.Clock = clock.Now
	t0 = time.Now()
	if _, err := fl.RecordHistory(ctx, db, db, 90*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	b.Logf("recorded the day's fleet counts in %s", time.Since(t0).Round(time.Millisecond))
	tok, _, err := db.CreateToken(ctx, &kiln.NewToken{Name: "bench", Role: kiln.RoleViewer})
	if err != nil {
		b.Fatal(err)
	}
	session, err := db.CreateSession(ctx, tok, time.Now().Add(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	dash, err := web.New(web.Config{Registry: db, Inventory: db, Fleet: db, Advisories: db, Runs: db, Tokens: db, Channels: db, Logger: logger, Clock: clock.Now, History: db, Services: db, Rollouts: db, Timeline: db})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct{ name, path string }{
		{"fleet", "/ui/fleet"},
		{"fleet-env", "/ui/fleet?env=prod"},
		{"fleet-advisory", "/ui/fleet?advisory=SYNTH-0000"},
		{"overage", "/ui/overage"},
		{"trends", "/ui/trends"},
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
				b.ReportMetric(float64(rec.Body.Len()), "bytes/page")
			}
		})
	}
}

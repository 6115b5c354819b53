package fleet_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/kiln-project/kiln/internal/benchdrivers"
	"github.com/kiln-project/kiln/internal/ci"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/bench"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// Benchmarks over a synthetic fleet (go test -run '^$' -bench . ./fleet/).
// KILN_BENCH_INSTANCES and KILN_BENCH_VERSIONS size it (default 1,000,000
// and 10,000, as the issue asks; setup then takes minutes).
// KILN_BENCH_SYNTH=counts synthesizes counts only (SynthConfig.CountsOnly:
// seconds for 10,000,000 instances; not kept). PostgreSQL needs
// KILN_TEST_POSTGRES.

func benchSize(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

func needPostgres(tb testing.TB) string {
	return ci.Postgres(tb)
}

// openBackend opens an empty store: a SQLite file or a fresh PostgreSQL
// schema (dropped at cleanup).
func openBackend(tb testing.TB, kind string, clock kiln.Clock) *store.DB {
	tb.Helper()
	u := "sqlite:" + filepath.Join(tb.TempDir(), "kiln.db")
	if kind == "postgres" {
		base := needPostgres(tb)
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "kiln_fleet_" + hex.EncodeToString(b[:])
		admin, err := sql.Open("pgx", base)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); _ = admin.Close() })
		pu, _ := url.Parse(base)
		q := pu.Query()
		q.Set("search_path", schema)
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	db, err := store.Open(context.Background(), u, "", slog.New(slog.DiscardHandler), clock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// openBenchFleet opens the store the fleet benchmarks run on. With
// KILN_BENCH_KEEP=DIR the fleet is kept between runs (DIR/fleet-N-M.db on
// SQLite, schema kiln_bench_N_M on PostgreSQL) and reused when present, so
// that iterating on a query does not synthesize a million instances each
// time; fresh is true when the store is empty.
func openBenchFleet(tb testing.TB, kind string, clock kiln.Clock, cfg fleet.SynthConfig) (db *store.DB, fresh bool) {
	tb.Helper()
	keep := os.Getenv("KILN_BENCH_KEEP")
	if keep == "" {
		return openBackend(tb, kind, clock), true
	}
	u := "sqlite:" + filepath.Join(keep, fmt.Sprintf("fleet-%d-%d.db", cfg.Instances, cfg.Versions))
	if kind == "postgres" {
		base := needPostgres(tb)
		schema := fmt.Sprintf("kiln_bench_%d_%d", cfg.Instances, cfg.Versions)
		admin, err := sql.Open("pgx", base)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := admin.Exec(`CREATE SCHEMA IF NOT EXISTS ` + schema); err != nil {
			tb.Fatal(err)
		}
		_ = admin.Close()
		pu, _ := url.Parse(base)
		q := pu.Query()
		q.Set("search_path", schema)
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	db, err := store.Open(context.Background(), u, "", slog.New(slog.DiscardHandler), clock)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	_, n, err := db.ListInstances(context.Background(), kiln.InstanceFilter{Limit: 1})
	if err != nil {
		tb.Fatal(err)
	}
	if n != 0 && n != cfg.Instances {
		tb.Fatalf("kept fleet %s has %d instances, want %d or none; remove it", u, n, cfg.Instances)
	}
	return db, n == 0
}

var start = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func BenchmarkFleet(b *testing.B) {
	cfg := fleet.SynthConfig{
		Images: 100, Versions: benchSize("KILN_BENCH_VERSIONS", 10_000), Instances: benchSize("KILN_BENCH_INSTANCES", 1_000_000),
		Advisories: 50, Envs: []string{"dev", "staging", "prod"}, Seed: 1, Span: 365 * 24 * time.Hour,
		CountsOnly: os.Getenv("KILN_BENCH_SYNTH") == "counts",
	}
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			clock := fleet.NewSynthClock(start)
			db, fresh := openBackend(b, kind, clock.Now), true
			if !cfg.CountsOnly {
				db, fresh = openBenchFleet(b, kind, clock.Now, cfg)
			}
			if fresh {
				t0 := time.Now()
				if err := fleet.Synthesize(context.Background(), db, clock, cfg); err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: synthesized %d versions and %d instances in %s", kind, cfg.Versions, cfg.Instances, time.Since(t0).Round(time.Millisecond))
			}
			fl := fleet.New(db, db)
			fl.Clock = clock.Now
			ctx := context.Background()
			if err := db.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: kiln.AgeOf(90 * 24 * time.Hour)}); err != nil {
				b.Fatal(err)
			}
			rep, err := fl.Report(ctx, "")
			if err != nil || rep.Instances != cfg.Instances {
				b.Fatalf("report counts %d instances, want %d (%v)", rep.Instances, cfg.Instances, err)
			}
			fixed := []kiln.VersionRef{{Image: "img-001", Number: cfg.Versions / 200}, {Image: "img-002", Number: cfg.Versions / 100}}
			b.Run("report", func(b *testing.B) {
				for b.Loop() {
					if _, err := fl.Report(ctx, ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("report-env", func(b *testing.B) {
				for b.Loop() {
					if _, err := fl.Report(ctx, "prod"); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("exposed-fixed-in", func(b *testing.B) {
				for b.Loop() {
					if _, err := fl.ExposedFixedIn(ctx, fixed, ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("exposed-advisory", func(b *testing.B) {
				for b.Loop() {
					if _, err := fl.ExposedTo(ctx, "SYNTH-0001", ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("overage", func(b *testing.B) {
				for b.Loop() {
					if _, err := fl.Overage(ctx, kiln.AgeOf(90*24*time.Hour), ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("stale", func(b *testing.B) {
				for b.Loop() {
					if _, err := fl.Stale(ctx, ""); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("drill-100", func(b *testing.B) {
				for b.Loop() {
					if _, _, err := db.ListInstances(ctx, kiln.InstanceFilter{Version: &kiln.VersionRef{Image: "img-003", Number: cfg.Versions / 100}, Limit: 100}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkCheckinHTTP posts check-ins to the real API (bearer token,
// agent role, the token cache as kiln serve has it) on loopback, through
// the batcher kiln serve uses, and reports check-ins per second and per
// transaction: bench.CheckinsOn, the figure `kiln bench all` reports.
// KILN_BENCH_CLIENTS is not read any more: 256 connections each keep one
// request in flight, over 10,000 instance ids.
// Bounded: run it with -benchtime=50000x (a fixed count) and -timeout.
func BenchmarkCheckinHTTP(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			env := &bench.Env{Dir: b.TempDir(), Drivers: benchdrivers.Real(), Logger: slog.New(slog.DiscardHandler)}
			if kind == "postgres" {
				env.Postgres = needPostgres(b)
			}
			res, perTx, err := bench.CheckinsOn(context.Background(), env, kind, b.N)
			if err != nil {
				b.Fatal(err)
			}
			// CPU time of this process (server and load generator; not the
			// PostgreSQL server's) per check-in: unlike check-ins per second,
			// it does not depend on what else the machine runs.
			b.ReportMetric(float64(res.CPU.Microseconds())/float64(b.N), "cpu-µs/checkin")
			b.ReportMetric(res.PerSecond(), "checkins/s")
			b.ReportMetric(perTx, "checkins/tx")
		})
	}
}

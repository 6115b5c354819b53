package fleet_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"github.com/kiln-project/kiln/internal/ci"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// Benchmarks over a synthetic fleet (go test -run '^$' -bench . ./fleet/).
// KILN_BENCH_INSTANCES and KILN_BENCH_VERSIONS size it (default 1,000,000
// and 10,000, as the issue asks; setup then takes minutes). PostgreSQL
// needs KILN_TEST_POSTGRES.

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
	}
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			clock := fleet.NewSynthClock(start)
			db, fresh := openBenchFleet(b, kind, clock.Now, cfg)
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
// transaction. KILN_BENCH_CLIENTS connections (default 256) each keep one
// request in flight, over 10,000 instance ids: the first round creates the
// instances, later ones check them in again. The load generator writes
// HTTP/1.1 by hand on kept-alive connections, so that the two cores this
// was measured on go to the server rather than to net/http's client.
// Bounded: run it with -benchtime=50000x (a fixed count) and -timeout.
func BenchmarkCheckinHTTP(b *testing.B) {
	for _, kind := range []string{"sqlite", "postgres"} {
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			db := openBackend(b, kind, time.Now)
			if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
				b.Fatal(err)
			}
			if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
				b.Fatal(err)
			}
			_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: "agents", Role: kiln.RoleAgent})
			if err != nil {
				b.Fatal(err)
			}
			counted := &countingFleet{Fleet: db}
			batcher := fleet.NewBatcher(counted, 256)
			defer batcher.Close()
			ts := httptest.NewServer(api.New(api.Config{CheckinRate: -1, Checkins: batcher}.WithStores(db)))
			defer ts.Close()
			workers, pool := benchSize("KILN_BENCH_CLIENTS", 256), int64(10_000)
			conns := make([]net.Conn, workers)
			for w := range conns {
				if conns[w], err = net.Dial("tcp", ts.Listener.Addr().String()); err != nil {
					b.Fatal(err)
				}
				defer conns[w].Close()
			}
			head := "POST " + fleet.CheckinPath + " HTTP/1.1\r\nHost: " + ts.Listener.Addr().String() +
				"\r\nContent-Type: application/json\r\nAuthorization: Bearer " + secret + "\r\nContent-Length: "
			var next atomic.Int64
			var failed atomic.Int64
			var firstErr atomic.Value
			b.ResetTimer()
			cpu0 := processCPU()
			t0 := time.Now()
			var wg sync.WaitGroup
			for w, conn := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					br := bufio.NewReader(conn)
					var req []byte
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						body := fmt.Sprintf(`{"instance_id":"i-%05d","hostname":"h-%d-%d","environment":"prod","release":{"image":"appserver","version":"1"}}`, i%pool, w, i%pool)
						req = append(append(append(append(req[:0], head...), strconv.Itoa(len(body))...), "\r\n\r\n"...), body...)
						if _, err := conn.Write(req); err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
							return
						}
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, err.Error())
							return
						}
						msg, _ := io.ReadAll(resp.Body)
						_ = resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, resp.Status+" "+string(msg))
						}
					}
				}()
			}
			wg.Wait()
			el := time.Since(t0)
			cpu := processCPU() - cpu0
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d check-ins failed; first: %v", n, b.N, firstErr.Load())
			}
			// CPU time of this process (server and load generator; not the
			// PostgreSQL server's) per check-in: unlike check-ins per second,
			// it does not depend on what else the machine runs.
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/checkin")
			b.ReportMetric(float64(b.N)/el.Seconds(), "checkins/s")
			b.ReportMetric(float64(b.N)/float64(counted.txs.Load()), "checkins/tx")
		})
	}
}

// processCPU is the user and system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// countingFleet counts the check-in transactions (batches) it passes on.
type countingFleet struct {
	kiln.Fleet
	txs atomic.Int64
}

func (c *countingFleet) CheckinWriters() int {
	if cc, ok := c.Fleet.(fleet.ConcurrentCheckins); ok {
		return cc.CheckinWriters()
	}
	return 1
}

func (c *countingFleet) CheckIn(ctx context.Context, cs []*kiln.Checkin) ([]*kiln.CheckinResult, error) {
	c.txs.Add(1)
	return c.Fleet.CheckIn(ctx, cs)
}

package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"github.com/kiln-project/kiln/internal/ci"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver for the admin connection

	"github.com/kiln-project/kiln"
)

// The shared suite: every test written with eachBackend runs against SQLite
// (a file in t.TempDir()) and PostgreSQL (a fresh schema in the database
// named by KILN_TEST_POSTGRES, dropped afterwards). Without
// KILN_TEST_POSTGRES the PostgreSQL half skips, unless CI=true, where it
// fails: start one with `eval "$(scripts/postgres-test.sh)"`.

// TestMain runs the tests, or, in the processes
// TestVersionNumbersConcurrentProcesses starts, the racing helper.
func TestMain(m *testing.M) {
	if u := os.Getenv(helperEnv); u != "" {
		n, _ := strconv.Atoi(os.Getenv("KILN_STORE_TEST_HELPER_N"))
		os.Exit(helperCreateVersions(u, n))
	}
	os.Exit(m.Run())
}

// testClock is a kiln.Clock that advances one second per reading, so every
// recorded time is distinct and predictable.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock {
	return &testClock{t: time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

// env is one test's database: the store under test, how to open more
// handles on the same database, and a raw connection for checks that go
// around the store.
type env struct {
	*DB
	kind  string // "sqlite" or "postgres"
	url   string // what Open takes
	clock *testClock
	raw   *sql.DB
}

// reopen opens another *DB on the same database, as a second kiln process
// would.
func (e *env) reopen(t testing.TB) *DB {
	t.Helper()
	db, err := Open(context.Background(), e.url, "", testLogger(t), e.clock.Now)
	if err != nil {
		t.Fatalf("open another handle: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// eachBackend runs fn as subtests "sqlite" and "postgres", each on a fresh
// database. The tests run in parallel with each other: each has its own
// database, and most of their time is spent waiting for fsync.
func eachBackend(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	t.Parallel()
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, kind))
		})
	}
}

func newEnv(t testing.TB, kind string) *env {
	t.Helper()
	e := &env{kind: kind, clock: newTestClock()}
	e.url, e.raw = emptyDatabase(t, kind)
	db, err := Open(context.Background(), e.url, "", testLogger(t), e.clock.Now)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	e.DB = db
	return e
}

// emptyDatabase makes a database with nothing in it and returns the URL
// Open takes and a raw connection to it.
func emptyDatabase(t testing.TB, kind string) (string, *sql.DB) {
	t.Helper()
	var u string
	var raw *sql.DB
	switch kind {
	case "sqlite":
		path := filepath.Join(t.TempDir(), "kiln.db")
		u = "sqlite:" + path
		var err error
		if raw, err = sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)"); err != nil {
			t.Fatal(err)
		}
	case "postgres":
		u, raw = postgresSchema(t)
	}
	t.Cleanup(func() { _ = raw.Close() })
	return u, raw
}

// needPostgres returns KILN_TEST_POSTGRES, skipping the test without it
// (failing under CI=true).
func needPostgres(t testing.TB) string {
	t.Helper()
	u := ci.Postgres(t)
	return u
}

// postgresSchema creates an empty schema for one test and returns a URL
// whose connections use it (search_path), and an admin connection to it.
func postgresSchema(t testing.TB) (string, *sql.DB) {
	t.Helper()
	base := needPostgres(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kiln_test_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create schema in %s: %v", redactURL(base), err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
		_ = admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	raw, err := sql.Open("pgx", u.String())
	if err != nil {
		t.Fatal(err)
	}
	return u.String(), raw
}

// counts returns the number of rows of every registry table, to show that
// a failed call changed nothing.
func (e *env) counts(t testing.TB) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"images", "versions", "provenance", "version_sources", "version_packages",
		"version_tags", "version_history", "version_attachments", "version_artifacts", "artifact_layers", "external_artifacts"} {
		var n int
		if err := e.raw.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
			t.Fatalf("count %s: %v", table, err)
		}
		out[table] = n
	}
	var latest int
	if err := e.raw.QueryRow(`SELECT COALESCE(SUM(latest_number), 0) FROM images`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	out["sum(images.latest_number)"] = latest
	return out
}

// unchanged fails unless the table counts equal before.
func (e *env) unchanged(t testing.TB, before map[string]int) {
	t.Helper()
	after := e.counts(t)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s: %d rows before the failed call, %d after", k, v, after[k])
		}
	}
}

// wantCode fails unless err carries code, and returns its message.
func wantCode(t testing.TB, err error, code string) string {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := kiln.ErrorCode(err); got != code {
		t.Fatalf("error code %s, want %s: %v", got, code, err)
	}
	return kiln.ErrorMessage(err)
}

func wantContains(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%q does not contain %q", s, sub)
		}
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func mkImage(t testing.TB, db *DB, name string) *kiln.Image {
	t.Helper()
	img := &kiln.Image{Name: name, Description: "the " + name + " line"}
	if err := db.CreateImage(context.Background(), img); err != nil {
		t.Fatalf("create image %s: %v", name, err)
	}
	return img
}

func mkVersion(t testing.TB, db *DB, nv *kiln.NewVersion) *kiln.Version {
	t.Helper()
	v, err := db.CreateVersion(context.Background(), nv)
	if err != nil {
		t.Fatalf("create version of %s: %v", nv.Image, err)
	}
	return v
}

func ref(image string, n int) kiln.VersionRef { return kiln.VersionRef{Image: image, Number: n} }

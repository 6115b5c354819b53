package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// TestImmutableRows checks that the database itself refuses to change
// write-once rows, even by direct SQL, and that the store reports such a
// refusal as EIMMUTABLE.
func TestImmutableRows(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver",
			Provenance: kiln.Provenance{
				Sources:  []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "debian:bookworm"}},
				Packages: []kiln.Package{{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"}},
			}})
		if err := e.AddAttachment(ctx, v.Ref(), &kiln.Attachment{Name: "report.json", Data: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		before := e.counts(t)
		stmts := []string{
			`UPDATE provenance SET built_by = 'mallory'`,
			`UPDATE provenance SET base_version_id = NULL`,
			`DELETE FROM provenance`,
			`UPDATE version_sources SET ref = 'debian:sid'`,
			`DELETE FROM version_sources`,
			`UPDATE version_packages SET version = '3.0.15-1~deb12u1'`,
			`DELETE FROM version_packages`,
			`UPDATE version_history SET actor = 'mallory'`,
			`DELETE FROM version_history`,
			`UPDATE version_attachments SET data = data`,
			`DELETE FROM version_attachments`,
		}
		if e.kind == "postgres" {
			stmts = append(stmts, `TRUNCATE version_packages`, `TRUNCATE provenance CASCADE`)
		}
		for _, q := range stmts {
			_, err := e.raw.Exec(q)
			if err == nil || !strings.Contains(err.Error(), immutablePrefix) {
				t.Errorf("direct %q: got %v, want a refusal starting %q", q, err, immutablePrefix)
			}
			err = e.write(ctx, func(tx *tx) error { _, err := tx.exec(ctx, q); return err })
			if msg := wantCode(t, err, kiln.EIMMUTABLE); !strings.Contains(msg, "cannot be") {
				t.Errorf("%q through the store: %s", q, msg)
			}
		}
		e.unchanged(t, before)
		got := must[*kiln.Version](t)(e.FindVersion(ctx, v.Ref()))
		if got.Provenance.Packages[0].Version != "3.0.11-1~deb12u2" || got.Provenance.Sources[0].Ref != "debian:bookworm" {
			t.Errorf("provenance changed: %+v", got.Provenance)
		}
	})
}

func TestMigrationsRecordedOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		// Several processes opening a fresh database at once: each
		// migration is applied exactly once.
		ms := must[[]migration](t)(loadMigrations(e.dialect))
		u, raw := emptyDatabase(t, e.kind)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() {
				var db *DB
				if db, errs[i] = Open(context.Background(), u, "", testLogger(t), nil); errs[i] == nil {
					errs[i] = db.Close()
				}
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Errorf("concurrent open: %v", err)
			}
		}
		rows, err := raw.Query(`SELECT version, name FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var v int
			var name string
			if err := rows.Scan(&v, &name); err != nil {
				t.Fatal(err)
			}
			got = append(got, name)
		}
		if len(got) != len(ms) || got[0] != "registry" {
			t.Errorf("schema_migrations = %v; want one row per migration (%d)", got, len(ms))
		}
		// A database from a newer kiln is refused, not half-used.
		if _, err := raw.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', '2030-01-01T00:00:00.000000Z')`); err != nil {
			t.Fatal(err)
		}
		_, err = Open(context.Background(), u, "", testLogger(t), nil)
		wantContains(t, wantCode(t, err, kiln.EUNAVAILABLE), "schema version 9999", "upgrade kiln")
	})
}

func TestMigrationsSameTablesInBothDialects(t *testing.T) {
	tables := func(d dialect) map[string]bool {
		ms := must[[]migration](t)(loadMigrations(d))
		out := map[string]bool{}
		for _, m := range ms {
			for _, line := range strings.Split(m.sql, "\n") {
				if rest, ok := strings.CutPrefix(line, "CREATE TABLE "); ok {
					out[strings.Fields(rest)[0]] = true
				}
			}
		}
		return out
	}
	s, p := tables(dialectSQLite), tables(dialectPostgres)
	if len(s) == 0 || len(s) != len(p) {
		t.Fatalf("sqlite tables %v, postgres tables %v", s, p)
	}
	for name := range s {
		if !p[name] {
			t.Errorf("table %s exists only in the sqlite migrations", name)
		}
	}
}

func TestOpenDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "kiln")
	db, err := Open(context.Background(), "", dir, testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("data directory mode %v, want 0700", st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "kiln.db")); err != nil {
		t.Errorf("no kiln.db in the data directory: %v", err)
	}
	var mode string
	if err := db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode = %q (%v), want wal", mode, err)
	}
	var fk int
	if err := db.sql.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Errorf("foreign_keys = %d (%v), want 1", fk, err)
	}

	if st, err := os.Stat(filepath.Join(dir, "kiln.db")); err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("kiln.db mode %v, want 0600", st.Mode().Perm())
	}

	_, err = Open(context.Background(), "", "", testLogger(t), nil)
	wantCode(t, err, kiln.EINVALID)
	_, err = Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "missing", "kiln.db"), "", testLogger(t), nil)
	wantContains(t, wantCode(t, err, kiln.EUNAVAILABLE), "cannot open database", "missing/kiln.db")
	_, err = Open(context.Background(), "postgres://kiln:hunter2@db:notaport/kiln", "", testLogger(t), nil)
	if msg := wantCode(t, err, kiln.EINVALID); strings.Contains(msg, "hunter2") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("message shows the password: %s", msg)
	}
	_, err = Open(context.Background(), "mysql://root:hunter2@db/kiln", "", testLogger(t), nil)
	msg := wantCode(t, err, kiln.EINVALID)
	wantContains(t, msg, "sqlite:PATH", "postgres://")
	if strings.Contains(msg, "hunter2") {
		t.Errorf("message shows the password: %s", msg)
	}
}

// TestSQLiteLocked holds the write lock from another connection, as another
// kiln process would, and checks the store gives up with EUNAVAILABLE and a
// message saying what to do, then works once the lock is gone.
func TestSQLiteLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	ctx := context.Background()
	db, err := open(ctx, config{url: "sqlite:" + path, logger: testLogger(t), clock: newTestClock().Now,
		busyTimeout: 50 * time.Millisecond, lockWait: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		t.Fatal(err)
	}
	err = db.CreateImage(ctx, &kiln.Image{Name: "appserver"})
	wantContains(t, wantCode(t, err, kiln.EUNAVAILABLE), "is locked by another kiln process", "retry", path)

	// Reads go on beside the writer (WAL).
	if _, err := db.ListImages(ctx); err != nil {
		t.Errorf("read while another process writes: %v", err)
	}
	if _, err := conn.ExecContext(ctx, `ROLLBACK`); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Errorf("after the lock is released: %v", err)
	}
}

// TestSQLiteReadOnly checks the message for a database that cannot be
// written. As root file permissions do not stop writes, so the read-only
// error comes from a connection opened with mode=ro; as another user the
// test also opens a read-only file through Open.
func TestSQLiteReadOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kiln.db")
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+path, "", testLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	_, err = ro.Exec(`INSERT INTO images (name, created_at) VALUES ('x', 'now')`)
	if err == nil {
		t.Fatal("write through a read-only connection succeeded")
	}
	msg := wantCode(t, db.translate(err), kiln.EUNAVAILABLE)
	wantContains(t, msg, "is read-only", "permissions", path)

	if os.Geteuid() != 0 {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{path, path + "-wal", path + "-shm"} {
			_ = os.Chmod(f, 0o444)
		}
		_ = os.Chmod(filepath.Dir(path), 0o555)
		defer os.Chmod(filepath.Dir(path), 0o755)
		_, err := Open(ctx, "sqlite:"+path, "", testLogger(t), nil)
		wantCode(t, err, kiln.EUNAVAILABLE)
	}
}

// TestPostgresUnreachable needs no server: nothing listens on port 1.
func TestPostgresUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Open(ctx, "postgres://kiln:s3cret-pw@127.0.0.1:1/kiln?sslmode=disable&connect_timeout=5", "", testLogger(t), nil)
	msg := wantCode(t, err, kiln.EUNAVAILABLE)
	wantContains(t, msg, "cannot connect to PostgreSQL at 127.0.0.1:1", "connection refused", "check --database")
	if strings.Contains(err.Error(), "s3cret-pw") || strings.Contains(msg, "s3cret-pw") {
		t.Errorf("message shows the password: %s", msg)
	}
}

func TestPostgresWrongPassword(t *testing.T) {
	u := needPostgres(t)
	bad := strings.Replace(u, "@", "x-wrong-pw@", 1) // appends to the password
	_, err := Open(context.Background(), bad, "", testLogger(t), nil)
	msg := wantCode(t, err, kiln.EUNAVAILABLE)
	wantContains(t, msg, "refused the login", "password")
	if strings.Contains(msg, "x-wrong-pw") || strings.Contains(err.Error(), "x-wrong-pw") {
		t.Errorf("message shows the password: %s", msg)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"postgres://kiln:hunter2@db:5432/kiln?sslmode=disable":        "postgres://kiln:xxxxx@db:5432/kiln?sslmode=disable",
		"postgres://kiln@db/kiln":                                     "postgres://kiln@db/kiln",
		"postgres://kiln:p%zz@db/kiln":                                "postgres://xxxxx@db/kiln",
		"postgres://kiln@db/kiln?password=hunter2&sslmode=disable":    "postgres://kiln@db/kiln?password=xxxxx&sslmode=disable",
		"postgres://kiln@db/kiln?sslpassword=hunter2":                 "postgres://kiln@db/kiln?sslpassword=xxxxx",
		"postgres://kiln@db/kiln?sslmode=disable&password=hunt%20er2": "postgres://kiln@db/kiln?password=xxxxx&sslmode=disable",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A password given as ?password= in the URL is not echoed by the "not
// valid" error either.
func TestOpenPostgresQueryPasswordNotEchoed(t *testing.T) {
	for _, u := range []string{
		"postgres://kiln@db:notaport/kiln?password=hunter2secret",
		"postgres://kiln@db/kiln?password=hunter2secret&connect_timeout=bogus",
	} {
		_, err := Open(context.Background(), u, t.TempDir(), nil, nil)
		if err == nil {
			t.Fatalf("%s opened", u)
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.Registry.
var _ kiln.Registry = (*DB)(nil)

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

func (d dialect) String() string {
	if d == dialectPostgres {
		return "postgres"
	}
	return "sqlite"
}

// Defaults for how long a write waits for the database. A SQLite writer
// waits busyTimeout inside SQLite for the file lock, and the store retries a
// busy transaction until lockWait has passed before giving up with
// kiln.EUNAVAILABLE.
const (
	defaultBusyTimeout = 5 * time.Second
	defaultLockWait    = 30 * time.Second
	// postgresMaxConns bounds the pool so that many concurrent callers queue
	// in the process rather than exhaust the server's max_connections.
	postgresMaxConns = 16
)

// DB is the registry on a SQL database. It is safe for concurrent use by
// many goroutines, and several processes may share one database (SQLite
// file or PostgreSQL).
type DB struct {
	sql     *sql.DB
	dialect dialect
	logger  *slog.Logger
	clock   kiln.Clock
	// where names the database in messages: a file path, or host:port/db
	// with the password removed.
	where string
	// pgHost is host:port for connection messages (PostgreSQL only).
	pgHost string
	// writers lets one SQLite write transaction of this process run at a
	// time, so concurrent callers queue fairly in Go rather than spin in
	// SQLite's busy handler. nil on PostgreSQL.
	writers  chan struct{}
	lockWait time.Duration
	// seal signs versions as they are recorded (SealVersionsWith).
	seal func(*kiln.Version) (*kiln.Attachment, error)
	// knownVersions holds the versions (kiln.VersionRef) a transaction
	// found recorded. Versions are never deleted, so check-ins ask the
	// database only about versions not seen yet (versionKnown).
	knownVersions sync.Map
}

// config is Open's input; tests shorten the waits.
type config struct {
	url         string
	dataDir     string
	logger      *slog.Logger
	clock       kiln.Clock
	busyTimeout time.Duration
	lockWait    time.Duration
}

// Open opens (creating if needed) the registry database named by url and
// applies pending migrations.
//
//   - "" or "sqlite:PATH": SQLite; an empty PATH means DATADIR/kiln.db, and
//     the data directory is created with mode 0700.
//   - "postgres://…" or "postgresql://…": PostgreSQL (pgx connection URL).
//
// Errors: EINVALID for a URL of another kind, EUNAVAILABLE when the database
// cannot be opened, reached or written.
func Open(ctx context.Context, url, dataDir string, logger *slog.Logger, clock kiln.Clock) (*DB, error) {
	return open(ctx, config{url: url, dataDir: dataDir, logger: logger, clock: clock,
		busyTimeout: defaultBusyTimeout, lockWait: defaultLockWait})
}

func open(ctx context.Context, cfg config) (*DB, error) {
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.DiscardHandler)
	}
	if cfg.clock == nil {
		cfg.clock = time.Now
	}
	db := &DB{logger: cfg.logger, clock: cfg.clock, lockWait: cfg.lockWait}
	var err error
	switch u := cfg.url; {
	case u == "" || strings.HasPrefix(u, "sqlite:"):
		err = db.openSQLite(ctx, strings.TrimPrefix(u, "sqlite:"), cfg)
	case strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://"):
		err = db.openPostgres(ctx, u)
	default:
		return nil, kiln.FieldErrorf(kiln.EINVALID, "database",
			"database URL %q is not supported; use sqlite:PATH or postgres://USER:PASSWORD@HOST:PORT/DB", redactURL(u))
	}
	if err != nil {
		return nil, err
	}
	if err := db.migrate(ctx); err != nil {
		_ = db.sql.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) openSQLite(ctx context.Context, path string, cfg config) error {
	db.dialect = dialectSQLite
	if path == "" {
		if cfg.dataDir == "" {
			return kiln.FieldErrorf(kiln.EINVALID, "data-dir", "no database file and no data directory given; set --data-dir or --database sqlite:PATH")
		}
		if err := os.MkdirAll(cfg.dataDir, 0o700); err != nil {
			return kiln.Errorf(kiln.EUNAVAILABLE, "cannot create data directory %s: %v; check its parent's permissions or set --data-dir", cfg.dataDir, errors.Unwrap(err))
		}
		path = filepath.Join(cfg.dataDir, "kiln.db")
	}
	if strings.ContainsAny(path, "?#") {
		return kiln.FieldErrorf(kiln.EINVALID, "database", "SQLite path %q contains '?' or '#'; choose a path without them", path)
	}
	db.where = path
	// The registry will hold API tokens and audit records: create the file
	// readable by its owner only. An existing file keeps its mode.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		_ = f.Close()
	}
	// Every connection gets the same pragmas. Write transactions start with
	// BEGIN IMMEDIATE (_txlock) so they take the write lock up front and a
	// busy database shows up at BEGIN, where retrying is safe; read-only
	// transactions use a plain BEGIN and run beside the writer under WAL.
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Set("_txlock", "immediate")
	sdb, err := sql.Open("sqlite", path+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("open sqlite %s: %w", path, err)
	}
	db.sql = sdb
	// Keep connections open: each new SQLite connection re-applies its
	// pragmas, and database/sql keeps only 2 idle ones by default, which
	// made concurrent reads (token checks, dashboards) reconnect constantly.
	sdb.SetMaxIdleConns(16)
	sdb.SetConnMaxIdleTime(5 * time.Minute)
	db.writers = make(chan struct{}, 1)
	// Switching a new file to WAL takes an exclusive lock that SQLite's
	// busy handler does not wait for: when several kiln processes open a
	// fresh database at once, retry for up to the lock wait.
	deadline := time.Now().Add(cfg.lockWait)
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 500*time.Millisecond) {
		err := sdb.PingContext(ctx)
		if err == nil {
			return nil
		}
		if !isBusy(err) || time.Now().Add(delay).After(deadline) || ctx.Err() != nil {
			_ = sdb.Close()
			return db.translate(fmt.Errorf("open %s: %w", path, err))
		}
		time.Sleep(delay)
	}
}

func (db *DB) openPostgres(ctx context.Context, u string) error {
	db.dialect = dialectPostgres
	db.where = redactURL(u)
	cfg, err := pgx.ParseConfig(u)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, "database", "PostgreSQL URL %s is not valid: %s; write postgres://USER:PASSWORD@HOST:PORT/DB",
			db.where, redactText(err.Error(), u))
	}
	db.pgHost = cfg.Host + ":" + strconv.Itoa(int(cfg.Port))
	db.where = db.pgHost + "/" + cfg.Database
	db.sql = stdlib.OpenDB(*cfg)
	db.sql.SetMaxOpenConns(postgresMaxConns)
	db.sql.SetMaxIdleConns(postgresMaxConns)
	db.sql.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.sql.PingContext(ctx); err != nil {
		_ = db.sql.Close()
		return db.translate(err)
	}
	return nil
}

// Close closes the database; calls in flight finish first.
func (db *DB) Close() error { return db.sql.Close() }

// Dialect returns "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.dialect.String() }

// now returns the injected clock's time in UTC, at the microsecond
// precision both dialects keep.
func (db *DB) now() time.Time { return db.clock().UTC().Truncate(time.Microsecond) }

// tx is one transaction with the helpers the private store functions use.
type tx struct {
	*sql.Tx
	db  *DB
	now time.Time
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.ExecContext(ctx, t.db.rebind(q), args...)
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(ctx, t.db.rebind(q), args...)
}

func (t *tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.QueryRowContext(ctx, t.db.rebind(q), args...)
}

// timeArg converts t to what the dialect stores: TIMESTAMPTZ on PostgreSQL,
// fixed-width UTC text on SQLite (so text order is time order). A zero time
// is NULL.
func (t *tx) timeArg(tm time.Time) any { return t.db.timeArg(tm) }

func (db *DB) timeArg(tm time.Time) any {
	if tm.IsZero() {
		return nil
	}
	tm = tm.UTC().Truncate(time.Microsecond)
	if db.dialect == dialectPostgres {
		return tm
	}
	return tm.Format(sqliteTimeLayout)
}

const sqliteTimeLayout = "2006-01-02T15:04:05.000000Z"

// write runs fn in one write transaction and commits it. On SQLite it
// queues behind this process's other writers, and retries the whole
// transaction while the file is locked by another process, until lockWait
// has passed. fn may therefore run more than once and must build its results
// afresh each time.
func (db *DB) write(ctx context.Context, fn func(*tx) error) error {
	if db.writers != nil {
		select {
		case db.writers <- struct{}{}:
			defer func() { <-db.writers }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	deadline := time.Now().Add(db.lockWait)
	backoff := 5 * time.Millisecond
	for {
		err := db.writeOnce(ctx, fn)
		if err == nil || !isBusy(err) {
			return db.translate(err)
		}
		if !time.Now().Add(backoff).Before(deadline) {
			return db.translate(err)
		}
		db.logger.DebugContext(ctx, "database busy; retrying", "database", db.where, "wait", backoff)
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return ctx.Err()
		}
		backoff = min(backoff*2, 250*time.Millisecond)
	}
}

func (db *DB) writeOnce(ctx context.Context, fn func(*tx) error) error {
	sqlTx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = sqlTx.Rollback() }()
	if err := fn(&tx{Tx: sqlTx, db: db, now: db.now()}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// read runs fn in a read-only transaction, so the queries it makes see one
// consistent state of the database.
func (db *DB) read(ctx context.Context, fn func(*tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if db.dialect == dialectPostgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	sqlTx, err := db.sql.BeginTx(ctx, opts)
	if err != nil {
		return db.translate(fmt.Errorf("begin: %w", err))
	}
	defer func() { _ = sqlTx.Rollback() }()
	return db.translate(fn(&tx{Tx: sqlTx, db: db, now: db.now()}))
}

// rebind turns the ? placeholders the queries are written with into $1, $2…
// for PostgreSQL. Queries in this package contain no literal '?'.
func (db *DB) rebind(q string) string {
	if db.dialect != dialectPostgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// dbTime scans a time column of either dialect: time.Time from PostgreSQL,
// text from SQLite, NULL as the zero time.
type dbTime struct{ t *time.Time }

func (d dbTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.t = time.Time{}
	case time.Time:
		*d.t = v.UTC()
	case string:
		return d.parse(v)
	case []byte:
		return d.parse(string(v))
	default:
		return fmt.Errorf("cannot scan %T into a time", src)
	}
	return nil
}

func (d dbTime) parse(s string) error {
	for _, layout := range []string{sqliteTimeLayout, time.RFC3339Nano, "2006-01-02 15:04:05.999999999-07:00", "2006-01-02 15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			*d.t = t.UTC()
			return nil
		}
	}
	return fmt.Errorf("cannot parse time %q", s)
}

// redactURL returns u with its password replaced by "xxxxx".
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		// Unparseable: cut everything between "://" and "@", which is
		// where credentials would be, and every query parameter.
		if i := strings.Index(u, "://"); i >= 0 {
			if j := strings.LastIndex(u, "@"); j > i {
				u = u[:i+3] + "xxxxx" + u[j:]
			}
		}
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i] + "?xxxxx"
		}
		return u
	}
	if q := p.Query(); len(secretParams(q)) > 0 {
		for _, k := range secretParams(q) {
			q.Set(k, "xxxxx")
		}
		p.RawQuery = q.Encode()
	}
	return p.Redacted()
}

// secretQueryParams are the libpq/pgx connection parameters that carry a
// secret when given in a URL's query.
var secretQueryParams = []string{"password", "sslpassword"}

// secretParams are the secret parameters q sets.
func secretParams(q url.Values) []string {
	var set []string
	for _, k := range secretQueryParams {
		if q.Has(k) {
			set = append(set, k)
		}
	}
	return set
}

func redactText(msg, u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return msg
	}
	var secrets []string
	if p.User != nil {
		if pw, ok := p.User.Password(); ok {
			secrets = append(secrets, pw)
		}
	}
	q := p.Query()
	for _, k := range secretParams(q) {
		secrets = append(secrets, q[k]...)
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		msg = strings.ReplaceAll(msg, s, "xxxxx")
		msg = strings.ReplaceAll(msg, url.QueryEscape(s), "xxxxx")
		msg = strings.ReplaceAll(msg, url.PathEscape(s), "xxxxx")
	}
	return msg
}

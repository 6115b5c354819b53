package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"

	"github.com/kiln-project/kiln"
)

// The schema is a numbered list of SQL files per dialect,
// migrations/<dialect>/NNNN_name.sql. Each file is applied once, in its own
// transaction, and recorded in schema_migrations in that same transaction.
// Add a change as a new file with the next number in both folders; never
// edit a file that has been released.
//
// This small runner is used instead of goose because the check "is this
// migration applied?" must happen inside the transaction that applies it,
// under a lock, so several kiln processes starting at once on one database
// apply each file exactly once: on SQLite the write transaction is BEGIN
// IMMEDIATE, on PostgreSQL it takes a transaction-scoped advisory lock. It
// also needs no statement-splitting annotations in the SQL files.
//
//go:embed migrations
var migrationFiles embed.FS

// migrationLockKey is the PostgreSQL advisory lock key ("kiln" in ASCII)
// held while a migration is checked and applied.
const migrationLockKey = 0x6b696c6e

var migrationNameRE = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations(d dialect) ([]migration, error) {
	dir := path.Join("migrations", d.String())
	entries, err := fs.ReadDir(migrationFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		m := migrationNameRE.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("embedded migration %s/%s: name must be NNNN_name.sql", dir, e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("embedded migrations %s and %s share number %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		body, err := fs.ReadFile(migrationFiles, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read embedded migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: m[2], sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies the migrations the database has not recorded yet.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations(db.dialect)
	if err != nil {
		return err
	}
	createTable := `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TEXT NOT NULL)`
	if db.dialect == dialectPostgres {
		createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL)`
	}
	newest := ms[len(ms)-1].version
	for _, m := range ms {
		err := db.write(ctx, func(tx *tx) error {
			if db.dialect == dialectPostgres {
				if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLockKey); err != nil {
					return fmt.Errorf("lock for migrations: %w", err)
				}
			}
			if _, err := tx.ExecContext(ctx, createTable); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
			var applied, highest int
			if err := tx.queryRow(ctx, `SELECT COUNT(*), COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&applied, &highest); err != nil {
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			if highest > newest {
				return kiln.Errorf(kiln.EUNAVAILABLE, "database %s has schema version %d but this kiln knows only up to %d; upgrade kiln", db.where, highest, newest)
			}
			var done int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.version).Scan(&done); err != nil {
				return fmt.Errorf("read schema_migrations: %w", err)
			}
			if done > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %04d_%s: %w", m.version, m.name, err)
			}
			if _, err := tx.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, tx.timeArg(tx.now)); err != nil {
				return fmt.Errorf("record migration %04d_%s: %w", m.version, m.name, err)
			}
			db.logger.InfoContext(ctx, "applied database migration", "database", db.where, "version", m.version, "name", m.name)
			return nil
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", db.where, err)
		}
	}
	return nil
}

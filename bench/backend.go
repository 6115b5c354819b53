package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"

	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection that makes and drops the bench schema

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/store"
)

// backends are the databases a figure is taken on: SQLite always,
// PostgreSQL when the run was given a URL.
func (e *Env) backends() []string {
	if e.Postgres == "" {
		return []string{"sqlite"}
	}
	return []string{"sqlite", "postgres"}
}

// openBackend opens an empty store: a SQLite file under the measure's
// directory, or a new PostgreSQL schema that close drops.
func openBackend(ctx context.Context, env *Env, kind string, clock kiln.Clock) (db *store.DB, closeFn func(), err error) {
	if kind == "sqlite" {
		db, err := store.Open(ctx, "sqlite:"+filepath.Join(env.Dir, "kiln.db"), "", env.Logger, clock)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { _ = db.Close() }, nil
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kiln_bench_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", env.Postgres)
	if err != nil {
		return nil, nil, fmt.Errorf("--postgres: %w", err)
	}
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		return nil, nil, fmt.Errorf("--postgres: create the bench schema: %w", err)
	}
	drop := func() {
		_, _ = admin.ExecContext(context.WithoutCancel(ctx), `DROP SCHEMA `+schema+` CASCADE`)
		_ = admin.Close()
	}
	pu, err := url.Parse(env.Postgres)
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("--postgres: %w", err)
	}
	q := pu.Query()
	q.Set("search_path", schema)
	pu.RawQuery = q.Encode()
	db, err = store.Open(ctx, pu.String(), "", env.Logger, clock)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return db, func() { _ = db.Close(); drop() }, nil
}

// Package store keeps kiln's registry — image lines, versions, provenance,
// tags, history and attachments — in a SQL database through database/sql.
// It speaks two dialects: embedded SQLite (modernc.org/sqlite, pure Go, one
// file, the default) and PostgreSQL (github.com/jackc/pgx/v5, for teams
// running several kiln processes on one database).
//
// Every mutating call runs in exactly one transaction that also writes its
// history entry; a call that fails leaves the database as it was. Version
// numbers are handed out inside that transaction. Provenance, sources,
// packages, history and attachments are write-once: the code has no update
// path for them and database triggers refuse UPDATE and DELETE.
//
// The package must not know about HTTP, the CLI, builds or platforms, and
// must not print: it returns *kiln.Error values that say what to do, and logs
// through the injected *slog.Logger. Messages never contain the password of a
// database URL.
package store

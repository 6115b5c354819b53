package store

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kiln-project/kiln"
)

// immutablePrefix starts the message of the triggers that guard write-once
// rows in both dialects (see migrations/*/0001_registry.sql).
const immutablePrefix = "kiln immutable:"

// pgImmutable is the SQLSTATE the PostgreSQL triggers raise.
const pgImmutable = "KLIMM"

// translate maps a driver error to a *kiln.Error the user can act on: a
// busy or read-only SQLite file, an unreachable PostgreSQL, a trigger
// refusing to change a write-once row. Errors that are already *kiln.Error,
// and errors it does not recognise, pass through unchanged (the latter
// become EINTERNAL for the caller).
func (db *DB) translate(err error) error {
	if err == nil {
		return nil
	}
	var ke *kiln.Error
	if errors.As(err, &ke) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if msg, ok := immutableMessage(err); ok {
		return &kiln.Error{Code: kiln.EIMMUTABLE, Message: msg + "; provenance, packages, sources, history and attachments are write-once", Err: err}
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
				Message: "database " + db.where + " is locked by another kiln process; retry when it has finished"}
		case sqlite3.SQLITE_READONLY:
			return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
				Message: "database " + db.where + " is read-only; check the permissions of the file and its directory, or point --database elsewhere"}
		case sqlite3.SQLITE_CANTOPEN:
			return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
				Message: "cannot open database " + db.where + "; check that its directory exists and is writable, or set --data-dir"}
		}
		return err
	}
	if db.dialect == dialectPostgres {
		return db.translatePostgres(err)
	}
	return err
}

func (db *DB) translatePostgres(err error) error {
	var ce *pgconn.ConnectError
	var pe *pgconn.PgError
	switch {
	case errors.As(err, &pe) && pe.Code == "28P01", errors.As(err, &pe) && pe.Code == "28000":
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
			Message: "PostgreSQL at " + db.pgHost + " refused the login: " + pe.Message + "; check the user and password in --database"}
	case errors.As(err, &pe) && pe.Code == "3D000":
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
			Message: "PostgreSQL at " + db.pgHost + ": " + pe.Message + "; create the database or fix --database"}
	case errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"):
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
			Message: "PostgreSQL at " + db.pgHost + " is not available: " + pe.Message + "; retry later or check the server"}
	case errors.As(err, &ce):
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
			Message: "cannot connect to PostgreSQL at " + db.pgHost + ": " + dialReason(err) + "; check --database and that the server is running"}
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
			Message: "lost the connection to PostgreSQL at " + db.pgHost + ": " + dialReason(err) + "; retry"}
	}
	return err
}

// dialReason gives the short reason of a network failure: "connection
// refused", "i/o timeout", "no such host".
func dialReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "unknown host " + dnsErr.Name
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err.Error()
	}
	return "connection failed"
}

// isBusy reports whether err is SQLite's "database is locked": another
// connection holds the write lock. Retrying the whole transaction is safe.
func isBusy(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// isUnique reports whether err is a unique or primary key violation.
func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// immutableMessage returns the message of a write-once trigger's refusal.
func immutableMessage(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == pgImmutable {
		return pe.Message, true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		msg := se.Error()
		if i := strings.Index(msg, immutablePrefix); i >= 0 {
			msg, _, _ = strings.Cut(msg[i:], " (")
			return msg, true
		}
	}
	return "", false
}

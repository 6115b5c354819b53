package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.AdvisorySourceStore.
var _ kiln.AdvisorySourceStore = (*DB)(nil)

const feedColumns = `name, kind, url, every_seconds, etag, last_modified, last_attempt, last_success, last_error, advisories, created_at, created_by`

func scanFeed(row interface{ Scan(...any) error }) (*kiln.AdvisoryFeed, error) {
	f := &kiln.AdvisoryFeed{}
	var kind string
	var every int64
	if err := row.Scan(&f.Name, &kind, &f.URL, &every, &f.ETag, &f.LastModified, dbTime{&f.LastAttempt}, dbTime{&f.LastSuccess},
		&f.LastError, &f.Advisories, dbTime{&f.CreatedAt}, &f.CreatedBy); err != nil {
		return nil, err
	}
	f.Kind, f.Every = kiln.AdvisorySource(kind), time.Duration(every)*time.Second
	return f, nil
}

func noFeed(name string) error {
	return kiln.Errorf(kiln.ENOTFOUND, "no advisory source %s; see `kiln advisory source list`", name)
}

// CreateAdvisoryFeed records a new advisory source.
func (db *DB) CreateAdvisoryFeed(ctx context.Context, f *kiln.AdvisoryFeed) error {
	if f == nil {
		return kiln.Errorf(kiln.EINVALID, "no advisory source given")
	}
	if err := f.Validate(); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM advisory_sources WHERE name = ?`, f.Name).Scan(&n); err != nil {
			return fmt.Errorf("add advisory source %s: %w", f.Name, err)
		}
		if n > 0 {
			return kiln.FieldErrorf(kiln.ECONFLICT, "name", "advisory source %s exists; remove it first or pick another name", f.Name)
		}
		f.CreatedAt, f.CreatedBy = tx.now, kiln.ActorFrom(ctx)
		if _, err := tx.exec(ctx, `INSERT INTO advisory_sources (name, kind, url, every_seconds, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)`,
			f.Name, string(f.Kind), f.URL, int64(f.Every/time.Second), tx.timeArg(tx.now), f.CreatedBy); err != nil {
			return fmt.Errorf("add advisory source %s: %w", f.Name, err)
		}
		return audit(ctx, tx, "advisory.source.add", "advisory source "+f.Name, string(f.Kind)+" "+redactURL(f.URL)+" every "+f.Every.String())
	})
}

// FindAdvisoryFeed returns one advisory source.
func (db *DB) FindAdvisoryFeed(ctx context.Context, name string) (*kiln.AdvisoryFeed, error) {
	var f *kiln.AdvisoryFeed
	err := db.read(ctx, func(tx *tx) error {
		var err error
		f, err = scanFeed(tx.queryRow(ctx, `SELECT `+feedColumns+` FROM advisory_sources WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return noFeed(name)
		}
		if err != nil {
			return fmt.Errorf("find advisory source %s: %w", name, err)
		}
		return nil
	})
	return f, err
}

// ListAdvisoryFeeds lists the advisory sources by name.
func (db *DB) ListAdvisoryFeeds(ctx context.Context) ([]*kiln.AdvisoryFeed, error) {
	var out []*kiln.AdvisoryFeed
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.AdvisoryFeed{}
		return eachRow(ctx, tx, `SELECT `+feedColumns+` FROM advisory_sources ORDER BY name`, nil, func(rows *sql.Rows) error {
			f, err := scanFeed(rows)
			if err != nil {
				return err
			}
			out = append(out, f)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list advisory sources: %w", err)
	}
	return out, nil
}

// DeleteAdvisoryFeed removes an advisory source and the advisories it
// brought.
func (db *DB) DeleteAdvisoryFeed(ctx context.Context, name string) (int, error) {
	removed := 0
	err := db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `DELETE FROM advisory_sources WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("remove advisory source %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return noFeed(name)
		}
		if removed, err = deleteFeedAdvisories(ctx, tx, name, nil); err != nil {
			return err
		}
		return audit(ctx, tx, "advisory.source.remove", "advisory source "+name, fmt.Sprintf("%d advisories removed", removed))
	})
	return removed, err
}

// deleteFeedAdvisories removes the advisories feed brought that keep does
// not name, and returns how many.
func deleteFeedAdvisories(ctx context.Context, tx *tx, feed string, keep map[string]bool) (int, error) {
	var gone []string
	if err := eachRow(ctx, tx, `SELECT id FROM advisories WHERE feed = ?`, []any{feed}, func(rows *sql.Rows) error {
		var id string
		if err := rows.Scan(&id); err != nil {
			return err
		}
		if !keep[id] {
			gone = append(gone, id)
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("advisories of source %s: %w", feed, err)
	}
	for _, id := range gone {
		for _, t := range []string{"advisory_fixed_in", "advisory_packages", "advisories"} {
			col := "advisory_id"
			if t == "advisories" {
				col = "id"
			}
			if _, err := tx.exec(ctx, `DELETE FROM `+t+` WHERE `+col+` = ?`, id); err != nil {
				return 0, fmt.Errorf("remove advisory %s of source %s: %w", id, feed, err)
			}
		}
	}
	return len(gone), nil
}

// feedChunk is how many advisories a sync validates, encodes and writes at
// a time: the store holds one chunk of a source, never all of it.
const feedChunk = 500

// ReplaceFeedAdvisories makes the advisories advs yields the advisories of
// source name, all or nothing, and records the sync as a success. They are
// written feedChunk at a time inside one transaction; what stays in memory
// to the end is the set of their ids (to find the ones the source no
// longer has, and ids given twice).
func (db *DB) ReplaceFeedAdvisories(ctx context.Context, name string, advs iter.Seq2[*kiln.Advisory, error], etag, lastModified string) (kiln.FeedImport, error) {
	var out kiln.FeedImport
	consumed := false
	err := db.write(ctx, func(tx *tx) error {
		// write retries fn only when the database was busy; with BEGIN
		// IMMEDIATE that is before fn runs, but a stream cannot be read
		// twice, so never pretend it can.
		if consumed {
			return kiln.Errorf(kiln.ECONFLICT, "sync advisory source %s: the database was busy in the middle of the import and it cannot be read again; nothing changed, sync again", name)
		}
		out = kiln.FeedImport{}
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM advisory_sources WHERE name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("sync advisory source %s: %w", name, err)
		}
		if n == 0 {
			return noFeed(name)
		}
		consumed = true
		keep := map[string]bool{}
		chunk := make([]*kiln.Advisory, 0, feedChunk)
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			docs, err := encodeFeedChunk(name, chunk, keep)
			if err != nil {
				return err
			}
			created, updated, err := putAdvisories(ctx, tx, chunk, docs, name)
			if err != nil {
				return err
			}
			out.Created, out.Updated = out.Created+created, out.Updated+updated
			out.Unchanged += len(chunk) - created - updated
			clear(chunk) // let the written advisories go
			chunk = chunk[:0]
			return nil
		}
		for a, err := range advs {
			if err != nil {
				return err
			}
			chunk = append(chunk, a)
			if len(chunk) == feedChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if err := flush(); err != nil {
			return err
		}
		removed, err := deleteFeedAdvisories(ctx, tx, name, keep)
		if err != nil {
			return err
		}
		out.Removed = removed
		held := out.Held()
		if _, err := tx.exec(ctx, `UPDATE advisory_sources SET etag = ?, last_modified = ?, last_attempt = ?, last_success = ?, last_error = '', advisories = ? WHERE name = ?`,
			etag, lastModified, tx.timeArg(tx.now), tx.timeArg(tx.now), held, name); err != nil {
			return fmt.Errorf("sync advisory source %s: %w", name, err)
		}
		return audit(ctx, tx, "advisory.source.sync", "advisory source "+name,
			fmt.Sprintf("%d advisories: %d new, %d replaced, %d removed, %d unchanged", held, out.Created, out.Updated, out.Removed, out.Unchanged))
	})
	return out, err
}

// encodeFeedChunk validates one chunk of a source's advisories, adds their
// ids to seen (refusing one seen before in the same sync) and returns their
// JSON documents.
func encodeFeedChunk(feed string, advs []*kiln.Advisory, seen map[string]bool) ([]string, error) {
	docs := make([]string, len(advs))
	for i, a := range advs {
		if err := a.Validate(); err != nil {
			return nil, fmt.Errorf("advisory %q of source %s: %w", a.ID, feed, err)
		}
		if seen[a.ID] {
			return nil, kiln.Errorf(kiln.ECONFLICT, "advisory %s is given twice by source %s; a source holds each id once", a.ID, feed)
		}
		seen[a.ID] = true
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encode advisory %s: %w", a.ID, err)
		}
		docs[i] = string(b)
	}
	return docs, nil
}

// RecordFeedCheck records a sync attempt that imported nothing. It is not
// audited: it changes no advisory (like a lease renewal).
func (db *DB) RecordFeedCheck(ctx context.Context, name string, c kiln.FeedCheck) error {
	return db.write(ctx, func(tx *tx) error {
		var res sql.Result
		var err error
		if c.Err == "" {
			res, err = tx.exec(ctx, `UPDATE advisory_sources SET last_attempt = ?, last_success = ?, last_error = '' WHERE name = ?`,
				tx.timeArg(tx.now), tx.timeArg(tx.now), name)
		} else {
			res, err = tx.exec(ctx, `UPDATE advisory_sources SET last_attempt = ?, last_error = ? WHERE name = ?`, tx.timeArg(tx.now), c.Err, name)
		}
		if err != nil {
			return fmt.Errorf("record sync of advisory source %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return noFeed(name)
		}
		return nil
	})
}

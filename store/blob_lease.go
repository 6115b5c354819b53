package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps blob leases and the gc mark.
var _ kiln.BlobLeases = (*DB)(nil)

// Leases and the gc mark meet on the one blob_gc row. On SQLite every
// write transaction holds the database's write lock (BEGIN IMMEDIATE), so
// a lease and a mark are ordered whole. On PostgreSQL (read committed) a
// lease reads the row FOR SHARE and the mark updates it: the update waits
// for every lease transaction that read the row to commit, and a lease
// that reads it after an update waits for that update to commit and reads
// the new row. Either way a lease committed before the mark is visible to
// the gc's LeasedBlobs (read after BeginBlobGC commits), and a lease
// written after the mark reads it as running.

// readBlobGC reads the gc mark; lock is "" (a plain read), "FOR SHARE" or
// "FOR UPDATE" (PostgreSQL only; SQLite's writer holds the whole file).
func readBlobGC(ctx context.Context, tx *tx, lock string) (*kiln.BlobGC, error) {
	q := `SELECT generation, holder, lease_until FROM blob_gc WHERE id = 1`
	if lock != "" && tx.db.dialect == dialectPostgres {
		q += " " + lock
	}
	m := &kiln.BlobGC{}
	if err := tx.queryRow(ctx, q).Scan(&m.Generation, &m.Holder, dbTime{&m.Until}); err != nil {
		return nil, fmt.Errorf("read the gc mark (blob_gc): %w", err)
	}
	m.Running = m.Holder != "" && m.Until.After(tx.now)
	if m.Holder == "" {
		m.Until = time.Time{}
	}
	return m, nil
}

func checkHolder(what, holder string, ttl time.Duration) error {
	if holder == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "holder", "a %s needs a holder naming the process", what)
	}
	if ttl <= 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "ttl", "a %s lasts a positive time; got %s", what, ttl)
	}
	return nil
}

// LeaseBlobs implements kiln.BlobLeases. Leases are not audited: they are
// a build's working state, gone once its version is recorded.
func (db *DB) LeaseBlobs(ctx context.Context, holder string, digests []string, ttl time.Duration) (*kiln.BlobGC, error) {
	if err := checkHolder("blob lease", holder, ttl); err != nil {
		return nil, err
	}
	for i, d := range digests {
		if err := kiln.ValidateDigest(fmt.Sprintf("digests[%d]", i), d); err != nil {
			return nil, err
		}
	}
	digests = slices.Compact(slices.Sorted(slices.Values(digests)))
	var m *kiln.BlobGC
	err := db.write(ctx, func(tx *tx) error {
		var err error
		// The mark first, locked: see the comment at the top of the file.
		if m, err = readBlobGC(ctx, tx, "FOR SHARE"); err != nil {
			return err
		}
		if _, err := tx.exec(ctx, `DELETE FROM blob_leases WHERE lease_until <= ?`, tx.timeArg(tx.now)); err != nil {
			return fmt.Errorf("drop ended blob leases: %w", err)
		}
		until := tx.timeArg(tx.now.Add(ttl))
		for _, d := range digests {
			if _, err := tx.exec(ctx, `INSERT INTO blob_leases (holder, digest, lease_until) VALUES (?, ?, ?)
				ON CONFLICT (holder, digest) DO UPDATE SET lease_until = excluded.lease_until`, holder, d, until); err != nil {
				return fmt.Errorf("lease blob %s: %w", d, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ReleaseBlobs implements kiln.BlobLeases.
func (db *DB) ReleaseBlobs(ctx context.Context, holder string) error {
	return db.write(ctx, func(tx *tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM blob_leases WHERE holder = ?`, holder); err != nil {
			return fmt.Errorf("release the blob leases of %s: %w", holder, err)
		}
		return nil
	})
}

// LeasedBlobs implements kiln.BlobLeases.
func (db *DB) LeasedBlobs(ctx context.Context) (map[string]bool, error) {
	out := map[string]bool{}
	err := db.read(ctx, func(tx *tx) error {
		rows, err := tx.query(ctx, `SELECT DISTINCT digest FROM blob_leases WHERE lease_until > ?`, tx.timeArg(tx.now))
		if err != nil {
			return fmt.Errorf("read blob leases: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var d string
			if err := rows.Scan(&d); err != nil {
				return fmt.Errorf("read blob leases: %w", err)
			}
			out[d] = true
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// BlobGCMark implements kiln.BlobLeases.
func (db *DB) BlobGCMark(ctx context.Context) (*kiln.BlobGC, error) {
	var m *kiln.BlobGC
	err := db.read(ctx, func(tx *tx) error {
		var err error
		m, err = readBlobGC(ctx, tx, "")
		return err
	})
	return m, err
}

// markRefusal says that another gc holds the mark m.
func markRefusal(m *kiln.BlobGC, now time.Time) error {
	return kiln.Errorf(kiln.ECONFLICT, "another artifact gc is deleting blobs: %s (its mark lasts until %s, %s from now); wait for it to end — if it died, run gc again after then",
		m.Holder, m.Until.UTC().Format("15:04:05 MST"), m.Until.Sub(now).Round(time.Second))
}

// BeginBlobGC implements kiln.BlobLeases. A gc's begin is audited with
// the gc itself (artifact.gc), not here.
func (db *DB) BeginBlobGC(ctx context.Context, holder string, ttl time.Duration) (*kiln.BlobGC, error) {
	if err := checkHolder("gc mark", holder, ttl); err != nil {
		return nil, err
	}
	var m *kiln.BlobGC
	err := db.write(ctx, func(tx *tx) error {
		cur, err := readBlobGC(ctx, tx, "FOR UPDATE")
		if err != nil {
			return err
		}
		if cur.Running && cur.Holder != holder {
			return markRefusal(cur, tx.now)
		}
		m = &kiln.BlobGC{Generation: cur.Generation + 1, Holder: holder, Until: tx.now.Add(ttl), Running: true}
		if _, err := tx.exec(ctx, `UPDATE blob_gc SET generation = ?, holder = ?, started_at = ?, lease_until = ? WHERE id = 1`,
			m.Generation, holder, tx.timeArg(tx.now), tx.timeArg(m.Until)); err != nil {
			return fmt.Errorf("take the gc mark: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// RenewBlobGC implements kiln.BlobLeases.
func (db *DB) RenewBlobGC(ctx context.Context, holder string, ttl time.Duration) error {
	if err := checkHolder("gc mark", holder, ttl); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		// Only a mark that has not ended: once it ended, a build may have
		// taken it as over and another gc may have begun.
		res, err := tx.exec(ctx, `UPDATE blob_gc SET lease_until = ? WHERE id = 1 AND holder = ? AND lease_until > ?`,
			tx.timeArg(tx.now.Add(ttl)), holder, tx.timeArg(tx.now))
		if err != nil {
			return fmt.Errorf("renew the gc mark: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		cur, err := readBlobGC(ctx, tx, "")
		if err != nil {
			return err
		}
		switch {
		case cur.Holder == "":
			return kiln.Errorf(kiln.ECONFLICT, "the gc mark of %s was released; this gc stops deleting: run it again", holder)
		case cur.Holder != holder:
			return kiln.Errorf(kiln.ECONFLICT, "the gc mark of %s was taken over by %s after it ended; this gc stops deleting: run it again", holder, cur.Holder)
		}
		return kiln.Errorf(kiln.ECONFLICT, "the gc mark of %s ended (at %s) before it was renewed; this gc stops deleting: run it again", holder, cur.Until.UTC().Format(time.RFC3339))
	})
}

// EndBlobGC implements kiln.BlobLeases.
func (db *DB) EndBlobGC(ctx context.Context, holder string) error {
	return db.write(ctx, func(tx *tx) error {
		if _, err := tx.exec(ctx, `UPDATE blob_gc SET holder = '', lease_until = NULL WHERE id = 1 AND holder = ?`, holder); err != nil {
			return fmt.Errorf("end the gc mark: %w", err)
		}
		return nil
	})
}

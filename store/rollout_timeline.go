package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps rollout timelines.
var _ kiln.RolloutTimeline = (*DB)(nil)

// RecordRolloutSample implements kiln.RolloutTimeline. A sample without a
// time is taken now.
func (db *DB) RecordRolloutSample(ctx context.Context, s *kiln.RolloutSample) error {
	vs := s.Versions
	if vs == nil {
		vs = []kiln.VersionCount{}
	}
	versions, err := json.Marshal(vs)
	if err != nil {
		return fmt.Errorf("rollout %d sample: %w", s.Rollout, err)
	}
	return db.write(ctx, func(tx *tx) error {
		if s.At.IsZero() {
			s.At = tx.now
		}
		_, err := tx.exec(ctx, `INSERT INTO rollout_samples (rollout_id, at, state, batch, versions, requests, errors,
			front_end_pid, health_passed, health_failed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			s.Rollout, tx.timeArg(s.At), string(s.State), s.Batch, string(versions), s.Requests, s.Errors,
			s.FrontEndPID, s.HealthPassed, s.HealthFailed)
		if isForeignKey(err) {
			return kiln.Errorf(kiln.ENOTFOUND, "rollout %d not found", s.Rollout)
		}
		if err != nil {
			return fmt.Errorf("record a sample of rollout %d: %w", s.Rollout, err)
		}
		return nil
	})
}

// RolloutSamples implements kiln.RolloutTimeline.
func (db *DB) RolloutSamples(ctx context.Context, rollout int64) ([]*kiln.RolloutSample, error) {
	var out []*kiln.RolloutSample
	err := db.read(ctx, func(tx *tx) error {
		out = nil
		return eachRow(ctx, tx, `SELECT at, state, batch, versions, requests, errors, front_end_pid, health_passed, health_failed
			FROM rollout_samples WHERE rollout_id = ? ORDER BY at, id`, []any{rollout}, func(rows *sql.Rows) error {
			s := &kiln.RolloutSample{Rollout: rollout}
			var state, versions string
			if err := rows.Scan(dbTime{&s.At}, &state, &s.Batch, &versions, &s.Requests, &s.Errors, &s.FrontEndPID,
				&s.HealthPassed, &s.HealthFailed); err != nil {
				return fmt.Errorf("samples of rollout %d: %w", rollout, err)
			}
			s.State = kiln.RolloutState(state)
			if err := json.Unmarshal([]byte(versions), &s.Versions); err != nil {
				return fmt.Errorf("samples of rollout %d: versions: %w", rollout, err)
			}
			out = append(out, s)
			return nil
		})
	})
	return out, err
}

// PruneRolloutSamples implements kiln.RolloutTimeline.
func (db *DB) PruneRolloutSamples(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `DELETE FROM rollout_samples WHERE at < ?`, tx.timeArg(cutoff))
		if err != nil {
			return fmt.Errorf("prune rollout samples: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// isForeignKey reports whether err is a foreign key violation.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

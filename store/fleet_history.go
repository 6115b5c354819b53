package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps the fleet's history.
var _ kiln.FleetHistory = (*DB)(nil)

// dayLayout is how fleet_history writes its day column in both dialects.
const dayLayout = "2006-01-02"

// RecordSnapshot implements kiln.FleetHistory: the day's rows are deleted
// and counts inserted in one transaction, so an environment that emptied
// during the day leaves no stale row.
func (db *DB) RecordSnapshot(ctx context.Context, day time.Time, counts []*kiln.FleetCount) error {
	if day.IsZero() {
		return kiln.FieldErrorf(kiln.EINVALID, "day", "a fleet snapshot needs the day it counts")
	}
	d := kiln.Day(day).Format(dayLayout)
	return db.write(ctx, func(tx *tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM fleet_history WHERE day = ?`, d); err != nil {
			return fmt.Errorf("record fleet snapshot of %s: %w", d, err)
		}
		for _, c := range counts {
			if _, err := tx.exec(ctx, `INSERT INTO fleet_history (day, environment, instances, on_latest,
				exposed_low, exposed_medium, exposed_high, exposed_critical, over_age, recorded_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				d, c.Environment, c.Instances, c.OnLatest, c.Exposed.Low, c.Exposed.Medium, c.Exposed.High, c.Exposed.Critical,
				c.OverAge, tx.timeArg(tx.now)); err != nil {
				return fmt.Errorf("record fleet snapshot of %s, environment %q: %w", d, c.Environment, err)
			}
		}
		return nil
	})
}

// ListSnapshots implements kiln.FleetHistory.
func (db *DB) ListSnapshots(ctx context.Context, f kiln.HistoryFilter) ([]*kiln.FleetCount, error) {
	q := `SELECT day, environment, instances, on_latest, exposed_low, exposed_medium, exposed_high, exposed_critical,
		over_age, recorded_at FROM fleet_history WHERE 1 = 1`
	var args []any
	if f.Environment != "" {
		q += ` AND environment = ?`
		args = append(args, f.Environment)
	}
	if !f.Since.IsZero() {
		q += ` AND day >= ?`
		args = append(args, kiln.Day(f.Since).Format(dayLayout))
	}
	q += ` ORDER BY day, environment`
	var out []*kiln.FleetCount
	err := db.read(ctx, func(tx *tx) error {
		out = nil
		return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			c := &kiln.FleetCount{}
			var day string
			if err := rows.Scan(&day, &c.Environment, &c.Instances, &c.OnLatest, &c.Exposed.Low, &c.Exposed.Medium,
				&c.Exposed.High, &c.Exposed.Critical, &c.OverAge, dbTime{&c.RecordedAt}); err != nil {
				return fmt.Errorf("read fleet history: %w", err)
			}
			t, err := time.Parse(dayLayout, day)
			if err != nil {
				return fmt.Errorf("read fleet history: day %q: %w", day, err)
			}
			c.Day = t
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// PruneSnapshots implements kiln.FleetHistory.
func (db *DB) PruneSnapshots(ctx context.Context, cutoff time.Time) (int, error) {
	var n int64
	err := db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `DELETE FROM fleet_history WHERE day < ?`, kiln.Day(cutoff).Format(dayLayout))
		if err != nil {
			return fmt.Errorf("prune fleet history: %w", err)
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

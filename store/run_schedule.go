package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ClaimSchedule decides, for one scheduled pipeline, whether its schedule
// fires now, and records the firing in the same transaction, so that of
// several servers sharing the database exactly one starts the run. next
// returns the schedule's next time after a given one. The first time a
// schedule (or a changed one) is seen, it is recorded and does not fire.
func (db *DB) ClaimSchedule(ctx context.Context, estate, image, cron string, next func(time.Time) time.Time) (bool, error) {
	var fire bool
	err := db.write(ctx, func(tx *tx) error {
		fire = false
		q := `SELECT cron, fired_at FROM schedules WHERE estate = ? AND image = ?`
		if db.dialect == dialectPostgres {
			q += ` FOR UPDATE`
		}
		var old string
		var fired time.Time
		err := tx.queryRow(ctx, q, estate, image).Scan(&old, dbTime{&fired})
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if _, err = tx.exec(ctx, `INSERT INTO schedules (estate, image, cron, fired_at) VALUES (?, ?, ?, ?) ON CONFLICT (estate, image) DO NOTHING`,
				estate, image, cron, tx.timeArg(tx.now)); err != nil {
				return fmt.Errorf("record schedule of %s: %w", image, err)
			}
			return audit(ctx, tx, "schedule.record", "image "+image, estate+": "+cron)
		case err != nil:
			return fmt.Errorf("read schedule of %s: %w", image, err)
		case old != cron:
			if _, err = tx.exec(ctx, `UPDATE schedules SET cron = ?, fired_at = ? WHERE estate = ? AND image = ?`, cron, tx.timeArg(tx.now), estate, image); err != nil {
				return fmt.Errorf("change schedule of %s: %w", image, err)
			}
			return audit(ctx, tx, "schedule.change", "image "+image, estate+": "+old+" → "+cron)
		}
		if n := next(fired); n.IsZero() || n.After(tx.now) {
			return nil
		}
		fire = true
		if _, err = tx.exec(ctx, `UPDATE schedules SET fired_at = ? WHERE estate = ? AND image = ?`, tx.timeArg(tx.now), estate, image); err != nil {
			return fmt.Errorf("fire schedule of %s: %w", image, err)
		}
		return audit(ctx, tx, "schedule.fire", "image "+image, estate+": "+cron)
	})
	return fire, err
}

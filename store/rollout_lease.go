package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB leases rollouts.
var _ kiln.RolloutLeaser = (*DB)(nil)

// rolloutHolder is what a refused lease request reads of the rollout.
type rolloutHolder struct {
	service string
	state   kiln.RolloutState
	owner   string
	until   time.Time
}

// findHolder reads who holds rollout id; on PostgreSQL the row stays locked
// until the transaction ends, so what was read is what the update changes.
func findHolder(ctx context.Context, tx *tx, id int64) (*rolloutHolder, error) {
	q := `SELECT service, state, owner, lease_until FROM rollouts WHERE id = ?`
	if tx.db.dialect == dialectPostgres {
		q += ` FOR UPDATE`
	}
	h := &rolloutHolder{}
	var state string
	err := tx.queryRow(ctx, q, id).Scan(&h.service, &state, &h.owner, dbTime{&h.until})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "there is no rollout %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("read rollout %d's lease: %w", id, err)
	}
	h.state = kiln.RolloutState(state)
	return h, nil
}

// refusal says why owner cannot run rollout id as read in h.
func (h *rolloutHolder) refusal(id int64, now time.Time) error {
	if h.state.Done() {
		return kiln.Errorf(kiln.ECONFLICT, "rollout %d of %s has ended (%s); there is nothing to resume: see `kiln rollout %s --status`", id, h.service, h.state, h.service)
	}
	return kiln.Errorf(kiln.ECONFLICT, "rollout %d of %s is being run by %s (lease until %s, %s from now); wait for it to end or stop that process — if it died, resume after its lease ends",
		id, h.service, h.owner, h.until.UTC().Format("15:04:05 MST"), h.until.Sub(now).Round(time.Second))
}

// held reports whether another owner than owner holds a lease valid at now.
func (h *rolloutHolder) heldByOther(owner string, now time.Time) bool {
	return h.owner != "" && h.owner != owner && h.until.After(now)
}

func checkLeaseArgs(owner string, ttl time.Duration) error {
	if owner == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "owner", "a rollout lease needs an owner naming the process")
	}
	if ttl <= 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "ttl", "a rollout lease lasts a positive time; got %s", ttl)
	}
	return nil
}

// AcquireRollout implements kiln.RolloutLeaser. A change of holder is
// audited (who runs the rollout, and whose ended lease it took over); the
// same owner acquiring again is a renewal and is not.
func (db *DB) AcquireRollout(ctx context.Context, id int64, owner string, ttl time.Duration) error {
	if err := checkLeaseArgs(owner, ttl); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		h, err := findHolder(ctx, tx, id)
		if err != nil {
			return err
		}
		if h.state.Done() || h.heldByOther(owner, tx.now) {
			return h.refusal(id, tx.now)
		}
		// The same condition again in the update: the row changes only if
		// nobody else holds a valid lease at this moment.
		res, err := tx.exec(ctx, `UPDATE rollouts SET owner = ?, lease_until = ?
			WHERE id = ? AND state IN ('running', 'rolling-back') AND (owner = '' OR owner = ? OR lease_until IS NULL OR lease_until <= ?)`,
			owner, tx.timeArg(tx.now.Add(ttl)), id, owner, tx.timeArg(tx.now))
		if err != nil {
			return fmt.Errorf("lease rollout %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if h, err = findHolder(ctx, tx, id); err != nil {
				return err
			}
			return h.refusal(id, tx.now)
		}
		if h.owner == owner {
			return nil
		}
		detail := fmt.Sprintf("rollout %d run by %s", id, owner)
		if h.owner != "" {
			detail += fmt.Sprintf(", taken over from %s whose lease ended at %s", h.owner, h.until.UTC().Format(time.RFC3339))
		}
		return audit(ctx, tx, "rollout.lease", "service "+h.service, detail)
	})
}

// RenewRollout implements kiln.RolloutLeaser. Renewals are heartbeats and
// are not audited.
func (db *DB) RenewRollout(ctx context.Context, id int64, owner string, ttl time.Duration) error {
	if err := checkLeaseArgs(owner, ttl); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `UPDATE rollouts SET lease_until = ? WHERE id = ? AND owner = ? AND state IN ('running', 'rolling-back')`,
			tx.timeArg(tx.now.Add(ttl)), id, owner)
		if err != nil {
			return fmt.Errorf("renew the lease of rollout %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			return nil
		}
		h, err := findHolder(ctx, tx, id)
		if err != nil {
			return err
		}
		if h.state.Done() {
			return h.refusal(id, tx.now)
		}
		if h.owner == "" {
			return kiln.Errorf(kiln.ECONFLICT, "the lease of rollout %d of %s was released; this process no longer runs it", id, h.service)
		}
		return kiln.Errorf(kiln.ECONFLICT, "rollout %d of %s was taken over by %s after this process's lease ended; this process stops running it",
			id, h.service, h.owner)
	})
}

// ReleaseRollout implements kiln.RolloutLeaser. Like a renewal it is not
// audited: the rollout's end or interruption is what was recorded.
func (db *DB) ReleaseRollout(ctx context.Context, id int64, owner string) error {
	return db.write(ctx, func(tx *tx) error {
		if _, err := tx.exec(ctx, `UPDATE rollouts SET owner = '', lease_until = NULL WHERE id = ? AND owner = ?`, id, owner); err != nil {
			return fmt.Errorf("release the lease of rollout %d: %w", id, err)
		}
		return nil
	})
}

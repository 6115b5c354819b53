package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps rollouts.
var (
	_ kiln.RolloutStore      = (*DB)(nil)
	_ kiln.LaunchConfigStore = (*DB)(nil)
)

const rolloutColumns = `id, service, from_image, from_number, to_image, to_number, state, batch, reason, batch_times,
	started_by, started_at, updated_at, finished_at, from_config, to_config`

func scanRollout(row interface{ Scan(...any) error }) (*kiln.Rollout, error) {
	r := &kiln.Rollout{}
	var state, times string
	if err := row.Scan(&r.ID, &r.Service, &r.From.Image, &r.From.Number, &r.To.Image, &r.To.Number, &state, &r.Batch, &r.Reason,
		&times, &r.StartedBy, dbTime{&r.StartedAt}, dbTime{&r.UpdatedAt}, dbTime{&r.FinishedAt}, &r.FromConfig, &r.ToConfig); err != nil {
		return nil, err
	}
	r.State = kiln.RolloutState(state)
	if err := json.Unmarshal([]byte(times), &r.BatchTimes); err != nil {
		return nil, fmt.Errorf("rollout %d: batch times: %w", r.ID, err)
	}
	return r, nil
}

func batchTimesJSON(d []time.Duration) string {
	if len(d) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(d) // durations always encode
	return string(b)
}

// CreateRollout records a running rollout; ECONFLICT when the service has
// one in progress.
func (db *DB) CreateRollout(ctx context.Context, r *kiln.Rollout) error {
	if r.To.IsZero() {
		return kiln.FieldErrorf(kiln.EINVALID, "to", "a rollout needs the version to roll out")
	}
	return db.write(ctx, func(tx *tx) error {
		var n int
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM services WHERE name = ?`, r.Service).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return serviceNotFound(r.Service)
		}
		var active int64
		err := tx.queryRow(ctx, `SELECT id FROM rollouts WHERE service = ? AND state IN ('running', 'rolling-back')`, r.Service).Scan(&active)
		if err == nil {
			return kiln.Errorf(kiln.ECONFLICT, "service %s has rollout %d in progress; resume it with `kiln rollout %s --resume` or wait for it", r.Service, active, r.Service)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		r.State, r.Batch, r.StartedAt, r.UpdatedAt = kiln.RolloutRunning, 0, tx.now, tx.now
		r.StartedBy = kiln.ActorFrom(ctx)
		err = tx.queryRow(ctx, `INSERT INTO rollouts (service, from_image, from_number, to_image, to_number, state, batch, reason, batch_times, started_by, started_at, updated_at, from_config, to_config)
			VALUES (?, ?, ?, ?, ?, ?, 0, ?, '[]', ?, ?, ?, ?, ?) RETURNING id`,
			r.Service, r.From.Image, r.From.Number, r.To.Image, r.To.Number, string(r.State), r.Reason, r.StartedBy,
			tx.timeArg(tx.now), tx.timeArg(tx.now), r.FromConfig, r.ToConfig).Scan(&r.ID)
		if isUnique(err) {
			return kiln.Errorf(kiln.ECONFLICT, "service %s got a rollout from another process meanwhile; see `kiln rollout %s --status`", r.Service, r.Service)
		}
		if err != nil {
			return fmt.Errorf("insert rollout of %s: %w", r.Service, err)
		}
		for _, c := range r.Configs {
			if err := putLaunchConfig(ctx, tx, c); err != nil {
				return err
			}
		}
		return audit(ctx, tx, "rollout.start", "service "+r.Service, fmt.Sprintf("rollout %d to %s", r.ID, r.To))
	})
}

// putLaunchConfig keeps a launch configuration by its digest (once: the
// digest covers its content).
func putLaunchConfig(ctx context.Context, tx *tx, c *kiln.LaunchConfigRecord) error {
	if c == nil || c.Digest == "" {
		return nil
	}
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("launch configuration %s: %w", c.Digest, err)
	}
	if _, err := tx.exec(ctx, `INSERT INTO launch_configs (digest, source, body, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (digest) DO NOTHING`,
		c.Digest, c.Source, string(body), tx.timeArg(tx.now)); err != nil {
		return fmt.Errorf("keep launch configuration %s: %w", c.Digest, err)
	}
	return nil
}

// FindLaunchConfig returns a launch configuration kept with a rollout.
func (db *DB) FindLaunchConfig(ctx context.Context, digest string) (*kiln.LaunchConfigRecord, error) {
	var body string
	err := db.read(ctx, func(tx *tx) error {
		err := tx.queryRow(ctx, `SELECT body FROM launch_configs WHERE digest = ?`, digest).Scan(&body)
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "no rollout kept the launch configuration %s", digest)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	c := &kiln.LaunchConfigRecord{}
	if err := json.Unmarshal([]byte(body), c); err != nil {
		return nil, fmt.Errorf("launch configuration %s: %w", digest, err)
	}
	return c, nil
}

// FindRollout returns a rollout by id.
func (db *DB) FindRollout(ctx context.Context, id int64) (*kiln.Rollout, error) {
	var r *kiln.Rollout
	err := db.read(ctx, func(tx *tx) error {
		var err error
		r, err = scanRollout(tx.queryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "there is no rollout %d", id)
		}
		return err
	})
	return r, err
}

// ActiveRollout returns the service's unfinished rollout.
func (db *DB) ActiveRollout(ctx context.Context, service string) (*kiln.Rollout, error) {
	var r *kiln.Rollout
	err := db.read(ctx, func(tx *tx) error {
		var err error
		r, err = scanRollout(tx.queryRow(ctx, `SELECT `+rolloutColumns+` FROM rollouts WHERE service = ? AND state IN ('running', 'rolling-back')`, service))
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "service %s has no rollout in progress", service)
		}
		return err
	})
	return r, err
}

// ListRollouts returns a service's rollouts (all services when empty),
// newest first.
func (db *DB) ListRollouts(ctx context.Context, service string, limit int) ([]*kiln.Rollout, error) {
	if limit <= 0 {
		limit = 100
	}
	q, args := `SELECT `+rolloutColumns+` FROM rollouts`, []any{}
	if service != "" {
		q, args = q+` WHERE service = ?`, append(args, service)
	}
	q, args = q+` ORDER BY id DESC LIMIT ?`, append(args, limit)
	var out []*kiln.Rollout
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Rollout{}
		return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			r, err := scanRollout(rows)
			if err == nil {
				out = append(out, r)
			}
			return err
		})
	})
	return out, err
}

// UpdateRollout records a rollout's progress; an ended one is audited.
func (db *DB) UpdateRollout(ctx context.Context, r *kiln.Rollout) error {
	return db.write(ctx, func(tx *tx) error {
		r.UpdatedAt = tx.now
		if r.State.Done() && r.FinishedAt.IsZero() {
			r.FinishedAt = tx.now
		}
		res, err := tx.exec(ctx, `UPDATE rollouts SET state = ?, batch = ?, reason = ?, batch_times = ?, updated_at = ?, finished_at = ? WHERE id = ?`,
			string(r.State), r.Batch, r.Reason, batchTimesJSON(r.BatchTimes), tx.timeArg(tx.now), tx.timeArg(r.FinishedAt), r.ID)
		if err != nil {
			return fmt.Errorf("update rollout %d: %w", r.ID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "there is no rollout %d", r.ID)
		}
		if r.State.Done() {
			return audit(ctx, tx, "rollout."+string(r.State), "service "+r.Service, fmt.Sprintf("rollout %d to %s: %s", r.ID, r.To, r.Reason))
		}
		detail := fmt.Sprintf("rollout %d to %s: %s, batch %d", r.ID, r.To, r.State, r.Batch)
		if r.Reason != "" {
			detail += ": " + r.Reason
		}
		return audit(ctx, tx, "rollout.step", "service "+r.Service, detail)
	})
}

// BreakGlass records manual access to an instance, marks it tainted and
// appends to the audit log, in one transaction.
func (db *DB) BreakGlass(ctx context.Context, b *kiln.BreakGlass) (*kiln.Instance, error) {
	if len(b.Reason) < 3 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "reason", "break-glass access needs a reason of a few words, e.g. --reason \"INC-123: inspect stuck queue\"")
	}
	if len(b.Reason) > 1024 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "reason", "the reason is %d bytes; the limit is 1024", len(b.Reason))
	}
	var inst *kiln.Instance
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if inst, err = findInstance(ctx, tx, b.InstanceID); err != nil {
			return err
		}
		b.InstanceID, b.Actor, b.Source, b.At = inst.ID, kiln.ActorFrom(ctx), kiln.SourceFrom(ctx), tx.now
		if err := tx.queryRow(ctx, `INSERT INTO break_glass (instance_id, actor, reason, source, at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			b.InstanceID, b.Actor, b.Reason, b.Source, tx.timeArg(tx.now)).Scan(&b.ID); err != nil {
			return fmt.Errorf("record break-glass access to %s: %w", inst.ID, err)
		}
		if _, err := tx.exec(ctx, `UPDATE instances SET tainted = ? WHERE id = ?`, true, inst.ID); err != nil {
			return fmt.Errorf("mark %s tainted: %w", inst.ID, err)
		}
		inst.Tainted = true
		return audit(ctx, tx, "instance.break-glass", "instance "+inst.Name, b.Reason)
	})
	if err != nil {
		return nil, err
	}
	return inst, nil
}

// ListBreakGlass returns the break-glass records of an instance (every
// instance when empty), oldest first.
func (db *DB) ListBreakGlass(ctx context.Context, instanceID string) ([]*kiln.BreakGlass, error) {
	q, args := `SELECT id, instance_id, actor, reason, source, at FROM break_glass`, []any{}
	if instanceID != "" {
		q, args = q+` WHERE instance_id = ?`, append(args, instanceID)
	}
	var out []*kiln.BreakGlass
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.BreakGlass{}
		return eachRow(ctx, tx, q+` ORDER BY id`, args, func(rows *sql.Rows) error {
			b := &kiln.BreakGlass{}
			if err := rows.Scan(&b.ID, &b.InstanceID, &b.Actor, &b.Reason, &b.Source, dbTime{&b.At}); err != nil {
				return err
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.Revoker.
var _ kiln.Revoker = (*DB)(nil)

// Revoke revokes ref and every version built on it (through Base or
// Parent, transitively) in one transaction: see revoke.
func (db *DB) Revoke(ctx context.Context, ref kiln.VersionRef, reason string) ([]*kiln.Revocation, error) {
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	var out []*kiln.Revocation
	err := db.write(ctx, func(tx *tx) error {
		var err error
		out, err = revoke(ctx, tx, ref, reason)
		return err
	})
	return out, err
}

// descendantRow is a version built on another, as revoke and restore see it.
type descendantRow struct {
	id     int64
	ref    kiln.VersionRef
	status kiln.Status
}

// revoke moves ref to revoked (from ready or deprecated, or from revoked
// through an ancestor, which makes the revocation its own), then every
// descendant not revoked or failed already, each with a revocation row,
// a history entry and an audit entry. The first revocation returned is
// ref's own.
func revoke(ctx context.Context, tx *tx, ref kiln.VersionRef, reason string) ([]*kiln.Revocation, error) {
	v, err := findVersion(ctx, tx, ref)
	if err != nil {
		return nil, err
	}
	actor := kiln.ActorFrom(ctx)
	own := &kiln.Revocation{Version: ref, Reason: reason, Actor: actor, At: tx.now, Previous: v.Status}
	switch {
	case v.Status == kiln.StatusRevoked:
		r, err := findRevocation(ctx, tx, v.ID)
		if err != nil {
			return nil, err
		}
		if r == nil || r.Through == nil {
			return nil, kiln.FieldErrorf(kiln.ECONFLICT, "status", "%s is revoked already; restore it with `kiln version restore %s` first if you mean to revoke it again", ref, ref)
		}
		// Revoked through an ancestor: the revocation becomes its own, so
		// restoring the ancestor keeps it revoked.
		own.Previous = r.Previous
		if _, err := tx.exec(ctx, `UPDATE version_revocations SET through_version_id = NULL, reason = ?, actor = ?, revoked_at = ? WHERE version_id = ?`,
			reason, actor, tx.timeArg(tx.now), v.ID); err != nil {
			return nil, fmt.Errorf("revoke %s: %w", ref, err)
		}
		if err := insertHistory(ctx, tx, v.ID, "revocation", "through "+r.Through.String(), "own", reason); err != nil {
			return nil, err
		}
		if err := audit(ctx, tx, "version.revoke", ref.String(), auditChange("revoked through "+r.Through.String(), "revoked", reason)); err != nil {
			return nil, err
		}
	case !v.Status.CanMoveTo(kiln.StatusRevoked):
		return nil, statusConflict(ref, v.Status, kiln.StatusRevoked)
	default:
		if err := markRevoked(ctx, tx, v.ID, v.Status, nil, reason); err != nil {
			return nil, fmt.Errorf("revoke %s: %w", ref, err)
		}
		if err := insertHistory(ctx, tx, v.ID, "status", string(v.Status), string(kiln.StatusRevoked), reason); err != nil {
			return nil, err
		}
		if err := audit(ctx, tx, "version.status", ref.String(), auditChange(string(v.Status), string(kiln.StatusRevoked), reason)); err != nil {
			return nil, err
		}
	}
	out := []*kiln.Revocation{own}
	ds, err := descendants(ctx, tx, v.ID)
	if err != nil {
		return nil, err
	}
	through := ref
	why := "revoked through " + ref.String()
	if reason != "" {
		why += ": " + reason
	}
	for _, d := range ds {
		if d.status == kiln.StatusRevoked || d.status == kiln.StatusFailed {
			continue
		}
		if err := markRevoked(ctx, tx, d.id, d.status, &v.ID, reason); err != nil {
			return nil, fmt.Errorf("revoke %s through %s: %w", d.ref, ref, err)
		}
		if err := insertHistory(ctx, tx, d.id, "status", string(d.status), string(kiln.StatusRevoked), why); err != nil {
			return nil, err
		}
		if err := audit(ctx, tx, "version.revoke.ancestry", d.ref.String(), auditChange(string(d.status), string(kiln.StatusRevoked), why)); err != nil {
			return nil, err
		}
		out = append(out, &kiln.Revocation{Version: d.ref, Through: &through, Reason: reason, Actor: actor, At: tx.now, Previous: d.status})
	}
	return out, nil
}

// markRevoked sets a version's status to revoked and records why.
func markRevoked(ctx context.Context, tx *tx, id int64, prev kiln.Status, through *int64, reason string) error {
	if _, err := tx.exec(ctx, `UPDATE versions SET status = ?, updated_at = ? WHERE id = ?`, string(kiln.StatusRevoked), tx.timeArg(tx.now), id); err != nil {
		return err
	}
	var th sql.NullInt64
	if through != nil {
		th = sql.NullInt64{Int64: *through, Valid: true}
	}
	_, err := tx.exec(ctx, `INSERT INTO version_revocations (version_id, through_version_id, reason, actor, revoked_at, previous_status) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (version_id) DO UPDATE SET through_version_id = excluded.through_version_id, reason = excluded.reason,
			actor = excluded.actor, revoked_at = excluded.revoked_at, previous_status = excluded.previous_status`,
		id, th, reason, kiln.ActorFrom(ctx), tx.timeArg(tx.now), string(prev))
	return err
}

// descendants lists the versions built on version id, through Parent or
// Base, transitively, oldest first.
func descendants(ctx context.Context, tx *tx, id int64) ([]descendantRow, error) {
	var out []descendantRow
	err := eachRow(ctx, tx, `WITH RECURSIVE d(id) AS (
			SELECT version_id FROM provenance WHERE parent_version_id = ? OR base_version_id = ?
			UNION
			SELECT p.version_id FROM provenance p JOIN d ON p.parent_version_id = d.id OR p.base_version_id = d.id
		)
		SELECT v.id, i.name, v.number, v.status FROM d JOIN versions v ON v.id = d.id JOIN images i ON i.id = v.image_id ORDER BY v.id`,
		[]any{id, id}, func(rows *sql.Rows) error {
			var r descendantRow
			var st string
			if err := rows.Scan(&r.id, &r.ref.Image, &r.ref.Number, &st); err != nil {
				return err
			}
			r.status = kiln.Status(st)
			out = append(out, r)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("find versions built on version %d: %w", id, err)
	}
	return out, nil
}

// revokedAncestor returns the nearest directly revoked ancestor of
// version id (through Parent or Base, transitively), or nil.
func revokedAncestor(ctx context.Context, tx *tx, id int64) (*int64, error) {
	var anc int64
	err := tx.queryRow(ctx, `WITH RECURSIVE a(id) AS (
			SELECT v.id FROM provenance p JOIN versions v ON v.id = p.parent_version_id OR v.id = p.base_version_id WHERE p.version_id = ?
			UNION
			SELECT v.id FROM a JOIN provenance p ON p.version_id = a.id JOIN versions v ON v.id = p.parent_version_id OR v.id = p.base_version_id
		)
		SELECT r.version_id FROM a JOIN version_revocations r ON r.version_id = a.id WHERE r.through_version_id IS NULL ORDER BY r.version_id DESC LIMIT 1`,
		id).Scan(&anc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("find a revoked ancestor of version %d: %w", id, err)
	}
	return &anc, nil
}

// findRevocation reads the revocation row of version id; nil when there
// is none (not revoked, or revoked before kiln kept revocations).
func findRevocation(ctx context.Context, tx *tx, id int64) (*kiln.Revocation, error) {
	r := &kiln.Revocation{}
	var thImage sql.NullString
	var thNum sql.NullInt64
	var prev string
	err := tx.queryRow(ctx, `SELECT i.name, v.number, r.reason, r.actor, r.revoked_at, r.previous_status, ti.name, tv.number
		FROM version_revocations r JOIN versions v ON v.id = r.version_id JOIN images i ON i.id = v.image_id
		LEFT JOIN versions tv ON tv.id = r.through_version_id LEFT JOIN images ti ON ti.id = tv.image_id
		WHERE r.version_id = ?`, id).Scan(&r.Version.Image, &r.Version.Number, &r.Reason, &r.Actor, dbTime{&r.At}, &prev, &thImage, &thNum)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read revocation of version %d: %w", id, err)
	}
	r.Previous = kiln.Status(prev)
	if thImage.Valid {
		r.Through = &kiln.VersionRef{Image: thImage.String, Number: int(thNum.Int64)}
	}
	return r, nil
}

// loadRevocations fills Revocation of the revoked versions among vs.
func loadRevocations(ctx context.Context, tx *tx, vs []*kiln.Version) error {
	for _, v := range vs {
		if v.Status != kiln.StatusRevoked {
			continue
		}
		r, err := findRevocation(ctx, tx, v.ID)
		if err != nil {
			return err
		}
		v.Revocation = r
	}
	return nil
}

// Restore undoes ref's own revocation and the revocations it caused. A
// version revoked through ref that is also built on another directly
// revoked version stays revoked, now through that one. A version revoked
// before kiln kept revocations has no previous status on record and is
// restored to deprecated.
//
// ECONFLICT when ref is not revoked, or is revoked only through an
// ancestor (restore the ancestor).
func (db *DB) Restore(ctx context.Context, ref kiln.VersionRef, reason string) ([]kiln.VersionRef, error) {
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	var out []kiln.VersionRef
	err := db.write(ctx, func(tx *tx) error {
		out = nil
		v, err := findVersion(ctx, tx, ref)
		if err != nil {
			return err
		}
		if v.Status != kiln.StatusRevoked {
			return kiln.FieldErrorf(kiln.ECONFLICT, "status", "%s is %s, not revoked; there is nothing to restore", ref, v.Status)
		}
		r, err := findRevocation(ctx, tx, v.ID)
		if err != nil {
			return err
		}
		if r != nil && r.Through != nil {
			return kiln.FieldErrorf(kiln.ECONFLICT, "status", "%s is revoked through its ancestor %s; restore %s (which restores what it revoked), or revoke and restore %s itself", ref, r.Through, r.Through, ref)
		}
		to := kiln.StatusDeprecated
		if r != nil && r.Previous.Valid() && r.Previous != kiln.StatusRevoked {
			to = r.Previous
		}
		if err := unrevoke(ctx, tx, v.ID, ref, to, reason); err != nil {
			return err
		}
		out = append(out, ref)
		// What it caused, oldest first.
		var caused []descendantRow
		if err := eachRow(ctx, tx, `SELECT r.version_id, i.name, v.number, r.previous_status FROM version_revocations r
			JOIN versions v ON v.id = r.version_id JOIN images i ON i.id = v.image_id
			WHERE r.through_version_id = ? ORDER BY r.version_id`, []any{v.ID}, func(rows *sql.Rows) error {
			var d descendantRow
			var prev string
			if err := rows.Scan(&d.id, &d.ref.Image, &d.ref.Number, &prev); err != nil {
				return err
			}
			d.status = kiln.Status(prev)
			caused = append(caused, d)
			return nil
		}); err != nil {
			return fmt.Errorf("find the versions revoked through %s: %w", ref, err)
		}
		for _, d := range caused {
			other, err := revokedAncestor(ctx, tx, d.id)
			if err != nil {
				return err
			}
			if other != nil {
				if _, err := tx.exec(ctx, `UPDATE version_revocations SET through_version_id = ? WHERE version_id = ?`, *other, d.id); err != nil {
					return fmt.Errorf("keep %s revoked: %w", d.ref, err)
				}
				if err := audit(ctx, tx, "version.revoke.ancestry", d.ref.String(), fmt.Sprintf("stays revoked: %s was restored, but another version it is built on is still revoked", ref)); err != nil {
					return err
				}
				continue
			}
			if err := unrevoke(ctx, tx, d.id, d.ref, d.status, "restored with "+ref.String()); err != nil {
				return err
			}
			out = append(out, d.ref)
		}
		return nil
	})
	return out, err
}

func unrevoke(ctx context.Context, tx *tx, id int64, ref kiln.VersionRef, to kiln.Status, reason string) error {
	if _, err := tx.exec(ctx, `UPDATE versions SET status = ?, updated_at = ? WHERE id = ?`, string(to), tx.timeArg(tx.now), id); err != nil {
		return fmt.Errorf("restore %s: %w", ref, err)
	}
	if _, err := tx.exec(ctx, `DELETE FROM version_revocations WHERE version_id = ?`, id); err != nil {
		return fmt.Errorf("restore %s: %w", ref, err)
	}
	if err := insertHistory(ctx, tx, id, "status", string(kiln.StatusRevoked), string(to), reason); err != nil {
		return err
	}
	return audit(ctx, tx, "version.restore", ref.String(), auditChange(string(kiln.StatusRevoked), string(to), reason))
}

// ScheduleRevocation records (or moves) ref's revocation for at, which
// must be in the future. ECONFLICT when ref is revoked already or cannot
// be revoked (not ready or deprecated).
func (db *DB) ScheduleRevocation(ctx context.Context, ref kiln.VersionRef, at time.Time, reason string) (*kiln.ScheduledRevocation, error) {
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	var s *kiln.ScheduledRevocation
	err := db.write(ctx, func(tx *tx) error {
		if !at.After(tx.now) {
			return kiln.FieldErrorf(kiln.EINVALID, "at", "revocation time %s is not in the future; revoke now by leaving out --at", at.UTC().Format(time.RFC3339))
		}
		v, err := findVersion(ctx, tx, ref)
		if err != nil {
			return err
		}
		if !v.Status.CanMoveTo(kiln.StatusRevoked) {
			return statusConflict(ref, v.Status, kiln.StatusRevoked)
		}
		s = &kiln.ScheduledRevocation{Version: ref, At: at.UTC().Truncate(time.Microsecond), Reason: reason, Actor: kiln.ActorFrom(ctx), CreatedAt: tx.now}
		if _, err := tx.exec(ctx, `INSERT INTO revocation_schedule (version_id, at, reason, actor, created_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (version_id) DO UPDATE SET at = excluded.at, reason = excluded.reason, actor = excluded.actor, created_at = excluded.created_at`,
			v.ID, tx.timeArg(s.At), reason, s.Actor, tx.timeArg(tx.now)); err != nil {
			return fmt.Errorf("schedule the revocation of %s: %w", ref, err)
		}
		return audit(ctx, tx, "version.revoke.schedule", ref.String(), "at "+s.At.Format(time.RFC3339)+orEmpty(": ", reason))
	})
	return s, err
}

func orEmpty(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// ScheduledRevocations lists pending revocations, soonest first.
func (db *DB) ScheduledRevocations(ctx context.Context) ([]*kiln.ScheduledRevocation, error) {
	var out []*kiln.ScheduledRevocation
	err := db.read(ctx, func(tx *tx) error {
		var err error
		out, err = scheduled(ctx, tx, time.Time{})
		return err
	})
	return out, err
}

type scheduledRow struct {
	kiln.ScheduledRevocation
	id int64
}

// scheduled lists pending revocations due by until (all when zero).
func scheduled(ctx context.Context, tx *tx, until time.Time) ([]*kiln.ScheduledRevocation, error) {
	rows, err := scheduledRows(ctx, tx, until)
	out := make([]*kiln.ScheduledRevocation, len(rows))
	for i, r := range rows {
		out[i] = &r.ScheduledRevocation
	}
	return out, err
}

func scheduledRows(ctx context.Context, tx *tx, until time.Time) ([]*scheduledRow, error) {
	q := `SELECT s.version_id, i.name, v.number, s.at, s.reason, s.actor, s.created_at FROM revocation_schedule s
		JOIN versions v ON v.id = s.version_id JOIN images i ON i.id = v.image_id`
	var args []any
	if !until.IsZero() {
		q += ` WHERE s.at <= ?`
		args = append(args, tx.timeArg(until))
	}
	out := []*scheduledRow{}
	err := eachRow(ctx, tx, q+` ORDER BY s.at, s.version_id`, args, func(rows *sql.Rows) error {
		s := &scheduledRow{}
		if err := rows.Scan(&s.id, &s.Version.Image, &s.Version.Number, dbTime{&s.At}, &s.Reason, &s.Actor, dbTime{&s.CreatedAt}); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list scheduled revocations: %w", err)
	}
	return out, nil
}

// CancelScheduledRevocation drops ref's pending revocation; ENOTFOUND when
// it has none.
func (db *DB) CancelScheduledRevocation(ctx context.Context, ref kiln.VersionRef) error {
	return db.write(ctx, func(tx *tx) error {
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		res, err := tx.exec(ctx, `DELETE FROM revocation_schedule WHERE version_id = ?`, id)
		if err != nil {
			return fmt.Errorf("cancel the revocation of %s: %w", ref, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "%s has no scheduled revocation; see `kiln version revocations`", ref)
		}
		return audit(ctx, tx, "version.revoke.cancel", ref.String(), "")
	})
}

// ApplyDueRevocations revokes, in one transaction, every version whose
// scheduled time has come, as the actor who scheduled it. A schedule that
// no longer applies (the version was revoked or failed meanwhile) is
// dropped with an audit entry saying why.
func (db *DB) ApplyDueRevocations(ctx context.Context) ([]*kiln.Revocation, error) {
	var out []*kiln.Revocation
	err := db.write(ctx, func(tx *tx) error {
		out = nil
		due, err := scheduledRows(ctx, tx, tx.now)
		if err != nil {
			return err
		}
		for _, s := range due {
			if _, err := tx.exec(ctx, `DELETE FROM revocation_schedule WHERE version_id = ?`, s.id); err != nil {
				return fmt.Errorf("apply the revocation of %s: %w", s.Version, err)
			}
			actx := kiln.WithActor(ctx, s.Actor)
			rs, err := revoke(actx, tx, s.Version, s.Reason)
			if kiln.ErrorCode(err) == kiln.ECONFLICT {
				if err := audit(actx, tx, "version.revoke.schedule", s.Version.String(), "dropped: "+kiln.ErrorMessage(err)); err != nil {
					return err
				}
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, rs...)
		}
		return nil
	})
	return out, err
}

package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
)

// SetStatus moves a version to status to, as the lifecycle allows
// (kiln.Status.CanMoveTo), and records the change in its history with the
// actor of ctx and reason. ECONFLICT names the statuses allowed next.
// Moving to revoked revokes every version built on it as well (Revoke).
func (db *DB) SetStatus(ctx context.Context, ref kiln.VersionRef, to kiln.Status, reason string) (*kiln.Version, error) {
	if !to.Valid() {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "status", "unknown status %q; use one of candidate, tested, ready, failed, deprecated, revoked", to)
	}
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	var v *kiln.Version
	err := db.write(ctx, func(tx *tx) error {
		var err error
		v, err = setStatus(ctx, tx, ref, to, reason)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

func setStatus(ctx context.Context, tx *tx, ref kiln.VersionRef, to kiln.Status, reason string) (*kiln.Version, error) {
	if to == kiln.StatusRevoked {
		// Revoking revokes what was built on it too (see revoke).
		if _, err := revoke(ctx, tx, ref, reason); err != nil {
			return nil, err
		}
		v, err := findVersion(ctx, tx, ref)
		if err != nil {
			return nil, err
		}
		return v, loadDetails(ctx, tx, []*kiln.Version{v}, true)
	}
	v, err := findVersion(ctx, tx, ref)
	if err != nil {
		return nil, err
	}
	from := v.Status
	if !from.CanMoveTo(to) {
		return nil, statusConflict(ref, from, to)
	}
	if _, err := tx.exec(ctx, `UPDATE versions SET status = ?, updated_at = ? WHERE id = ?`, string(to), tx.timeArg(tx.now), v.ID); err != nil {
		return nil, fmt.Errorf("set status of %s: %w", ref, err)
	}
	if err := insertHistory(ctx, tx, v.ID, "status", string(from), string(to), reason); err != nil {
		return nil, err
	}
	if err := audit(ctx, tx, "version.status", ref.String(), auditChange(string(from), string(to), reason)); err != nil {
		return nil, err
	}
	v.Status, v.UpdatedAt = to, tx.now
	if err := loadDetails(ctx, tx, []*kiln.Version{v}, true); err != nil {
		return nil, err
	}
	return v, nil
}

func statusConflict(ref kiln.VersionRef, from, to kiln.Status) error {
	next := from.Next()
	if len(next) == 0 {
		return kiln.FieldErrorf(kiln.ECONFLICT, "status", "%s is %s, which is final; it cannot become %s (build a new version instead)", ref, from, to)
	}
	names := make([]string, len(next))
	for i, s := range next {
		names[i] = string(s)
	}
	if from == to {
		return kiln.FieldErrorf(kiln.ECONFLICT, "status", "%s is already %s; it can move on to %s", ref, from, strings.Join(names, " or "))
	}
	return kiln.FieldErrorf(kiln.ECONFLICT, "status", "%s is %s and cannot become %s; from %s it can move to %s", ref, from, to, from, strings.Join(names, " or "))
}

// maxReasonLen bounds the free text kept with a history entry.
const maxReasonLen = 1024

func validateReason(reason string) error {
	if len(reason) > maxReasonLen {
		return kiln.FieldErrorf(kiln.EINVALID, "reason", "reason is %d bytes; the limit is %d", len(reason), maxReasonLen)
	}
	return nil
}

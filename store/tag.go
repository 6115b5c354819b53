package store

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/kiln-project/kiln"
)

// UpdateTags sets and removes free-form tags of a version, writing one
// history entry per tag that changed. System tags (Name, Version,
// Release_Status) cannot be set or removed: EINVALID. Removing a tag the
// version does not have, or setting a tag to the value it has, changes
// nothing and records nothing.
func (db *DB) UpdateTags(ctx context.Context, ref kiln.VersionRef, upd kiln.TagUpdate) (*kiln.Version, error) {
	for _, k := range slices.Sorted(maps.Keys(upd.Set)) {
		if err := kiln.ValidateTag("tags", k, upd.Set[k]); err != nil {
			return nil, err
		}
	}
	for _, k := range upd.Remove {
		if kiln.IsSystemTag(k) {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "remove", "tag %q is maintained by kiln and cannot be removed", k)
		}
		if _, both := upd.Set[k]; both {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "remove", "tag %q is both set and removed; do one or the other", k)
		}
	}
	if err := validateReason(upd.Reason); err != nil {
		return nil, err
	}
	var v *kiln.Version
	err := db.write(ctx, func(tx *tx) error {
		var err error
		v, err = updateTags(ctx, tx, ref, upd)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

func updateTags(ctx context.Context, tx *tx, ref kiln.VersionRef, upd kiln.TagUpdate) (*kiln.Version, error) {
	v, err := findVersion(ctx, tx, ref)
	if err != nil {
		return nil, err
	}
	if err := loadDetails(ctx, tx, []*kiln.Version{v}, true); err != nil {
		return nil, err
	}
	old := v.Tags
	changed := false
	for _, k := range slices.Sorted(maps.Keys(upd.Set)) {
		val := upd.Set[k]
		prev, had := old[k]
		switch {
		case had && prev == val:
			continue
		case had:
			_, err = tx.exec(ctx, `UPDATE version_tags SET value = ? WHERE version_id = ? AND key = ?`, val, v.ID, k)
		default:
			_, err = tx.exec(ctx, `INSERT INTO version_tags (version_id, key, value) VALUES (?, ?, ?)`, v.ID, k, val)
		}
		if err != nil {
			return nil, fmt.Errorf("set tag %s of %s: %w", k, ref, err)
		}
		if err := insertHistory(ctx, tx, v.ID, "tag:"+k, prev, val, upd.Reason); err != nil {
			return nil, err
		}
		old[k], changed = val, true
	}
	for _, k := range upd.Remove {
		prev, had := old[k]
		if !had {
			continue
		}
		if _, err := tx.exec(ctx, `DELETE FROM version_tags WHERE version_id = ? AND key = ?`, v.ID, k); err != nil {
			return nil, fmt.Errorf("remove tag %s of %s: %w", k, ref, err)
		}
		if err := insertHistory(ctx, tx, v.ID, "tag:"+k, prev, "", upd.Reason); err != nil {
			return nil, err
		}
		delete(old, k)
		changed = true
	}
	if free := len(old) - 3; free > kiln.MaxTags {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "tags", "%s would have %d tags; the limit is %d, remove some first", ref, free, kiln.MaxTags)
	}
	if changed {
		if _, err := tx.exec(ctx, `UPDATE versions SET updated_at = ? WHERE id = ?`, tx.timeArg(tx.now), v.ID); err != nil {
			return nil, fmt.Errorf("update %s: %w", ref, err)
		}
		v.UpdatedAt = tx.now
		if err := audit(ctx, tx, "version.tags", ref.String(), tagAuditDetail(upd)); err != nil {
			return nil, err
		}
	}
	return v, nil
}

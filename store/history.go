package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kiln-project/kiln"
)

// insertHistory records one change of a version, with the actor carried by
// ctx and the transaction's time.
func insertHistory(ctx context.Context, tx *tx, versionID int64, field, from, to, reason string) error {
	if _, err := tx.exec(ctx, `INSERT INTO version_history (version_id, time, actor, field, from_value, to_value, reason)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		versionID, tx.timeArg(tx.now), kiln.ActorFrom(ctx), field, from, to, reason); err != nil {
		return fmt.Errorf("record history (%s): %w", field, err)
	}
	return nil
}

// History returns a version's changes, oldest first, starting with its
// creation (status "" → candidate).
func (db *DB) History(ctx context.Context, ref kiln.VersionRef) ([]*kiln.HistoryEntry, error) {
	var hs []*kiln.HistoryEntry
	err := db.read(ctx, func(tx *tx) error {
		hs = nil
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		return eachRow(ctx, tx, `SELECT id, time, actor, field, from_value, to_value, reason
			FROM version_history WHERE version_id = ? ORDER BY id`, []any{id}, func(rows *sql.Rows) error {
			h := &kiln.HistoryEntry{Version: ref}
			if err := rows.Scan(&h.ID, dbTime{&h.Time}, &h.Actor, &h.Field, &h.From, &h.To, &h.Reason); err != nil {
				return fmt.Errorf("history of %s: %w", ref, err)
			}
			hs = append(hs, h)
			return nil
		})
	})
	return hs, err
}

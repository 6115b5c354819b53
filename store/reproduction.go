package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
)

var _ kiln.Reproductions = (*DB)(nil)

// RecordReproduction records one rebuild check of a version, with a
// history entry and an audit entry.
func (db *DB) RecordReproduction(ctx context.Context, r *kiln.Reproduction) error {
	if err := kiln.ValidateDigest("digest", r.Digest); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		id, err := versionID(ctx, tx, r.Version)
		if err != nil {
			return err
		}
		r.Actor, r.At = kiln.ActorFrom(ctx), tx.now
		if _, err := tx.exec(ctx, `INSERT INTO version_reproductions (version_id, identical, digest, summary, actor, checked_at, elapsed_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, r.Identical, r.Digest, r.Summary, r.Actor, tx.timeArg(r.At), r.Elapsed.Milliseconds()); err != nil {
			return fmt.Errorf("record reproduction of %s: %w", r.Version, err)
		}
		result := "different"
		if r.Identical {
			result = "identical"
		}
		if err := insertHistory(ctx, tx, id, "reproduction", "", result, r.Digest); err != nil {
			return err
		}
		return audit(ctx, tx, "version.rebuild.check", r.Version.String(), result+" "+r.Digest)
	})
}

// ListReproductions returns ref's rebuild checks, newest first.
func (db *DB) ListReproductions(ctx context.Context, ref kiln.VersionRef) ([]*kiln.Reproduction, error) {
	out := []*kiln.Reproduction{}
	err := db.read(ctx, func(tx *tx) error {
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		return eachRow(ctx, tx, `SELECT identical, digest, summary, actor, checked_at, elapsed_ms FROM version_reproductions
			WHERE version_id = ? ORDER BY id DESC`, []any{id}, func(rows *sql.Rows) error {
			r := &kiln.Reproduction{Version: ref}
			var ms int64
			if err := rows.Scan(&r.Identical, &r.Digest, &r.Summary, &r.Actor, dbTime{&r.At}, &ms); err != nil {
				return err
			}
			r.Elapsed = time.Duration(ms) * time.Millisecond
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

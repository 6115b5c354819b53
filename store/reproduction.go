package store

import (
	"context"
	"database/sql"
	"encoding/json"
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
	if len(r.Files) > kiln.MaxReproductionFiles {
		return kiln.FieldErrorf(kiln.EINVALID, "files", "%d differing files given; a check keeps at most %d (and their count in differing_files)", len(r.Files), kiln.MaxReproductionFiles)
	}
	if r.DifferingFiles < len(r.Files) {
		return kiln.FieldErrorf(kiln.EINVALID, "differing_files", "%d differing files counted but %d listed", r.DifferingFiles, len(r.Files))
	}
	files := ""
	if len(r.Files) > 0 {
		b, err := json.Marshal(r.Files)
		if err != nil {
			return err
		}
		files = string(b)
	}
	return db.write(ctx, func(tx *tx) error {
		id, err := versionID(ctx, tx, r.Version)
		if err != nil {
			return err
		}
		r.Actor, r.At = kiln.ActorFrom(ctx), tx.now
		if _, err := tx.exec(ctx, `INSERT INTO version_reproductions (version_id, identical, digest, summary, actor, checked_at, elapsed_ms, differing_files, files)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			id, r.Identical, r.Digest, r.Summary, r.Actor, tx.timeArg(r.At), r.Elapsed.Milliseconds(), r.DifferingFiles, files); err != nil {
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
		return eachRow(ctx, tx, `SELECT identical, digest, summary, actor, checked_at, elapsed_ms, differing_files, files FROM version_reproductions
			WHERE version_id = ? ORDER BY id DESC`, []any{id}, func(rows *sql.Rows) error {
			r := &kiln.Reproduction{Version: ref}
			var ms int64
			var files string
			if err := rows.Scan(&r.Identical, &r.Digest, &r.Summary, &r.Actor, dbTime{&r.At}, &ms, &r.DifferingFiles, &files); err != nil {
				return err
			}
			if files != "" {
				if err := json.Unmarshal([]byte(files), &r.Files); err != nil {
					return fmt.Errorf("the differing files of a check of %s: %w", ref, err)
				}
			}
			r.Elapsed = time.Duration(ms) * time.Millisecond
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

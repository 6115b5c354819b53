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
// history entry and an audit entry, and, when r.Seal is set, the signed
// record it returns as an attachment, all in one transaction.
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
		detail := result + " " + r.Digest
		if r.Seal != nil {
			a, err := r.Seal(r)
			if err != nil {
				return fmt.Errorf("sign the check of %s: %w", r.Version, err)
			}
			if a != nil {
				if a.Name != r.AttestationName() {
					return fmt.Errorf("the signed check of %s is named %s; it must be kept as %s, where the check's readers look for it", r.Version, a.Name, r.AttestationName())
				}
				if _, err := tx.exec(ctx, `INSERT INTO version_attachments (version_id, name, media_type, size, data, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
					id, a.Name, a.MediaType, len(a.Data), a.Data, tx.timeArg(tx.now)); err != nil {
					return fmt.Errorf("keep the signed check of %s as %s: %w", r.Version, a.Name, err)
				}
				r.Attestation = a.Name
				detail += ", signed as " + a.Name
			}
		}
		return audit(ctx, tx, "version.rebuild.check", r.Version.String(), detail)
	})
}

// ListReproductions returns ref's rebuild checks, newest first, each with
// the attachment keeping its signed record (Attestation) when there is one.
func (db *DB) ListReproductions(ctx context.Context, ref kiln.VersionRef) ([]*kiln.Reproduction, error) {
	out := []*kiln.Reproduction{}
	err := db.read(ctx, func(tx *tx) error {
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		err = eachRow(ctx, tx, `SELECT identical, digest, summary, actor, checked_at, elapsed_ms, differing_files, files FROM version_reproductions
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
		if err != nil || len(out) == 0 {
			return err
		}
		signed := map[string]bool{}
		err = eachRow(ctx, tx, `SELECT name FROM version_attachments WHERE version_id = ? AND name LIKE 'reproduction.%'`, []any{id}, func(rows *sql.Rows) error {
			var name string
			if err := rows.Scan(&name); err != nil {
				return err
			}
			signed[name] = true
			return nil
		})
		for _, r := range out {
			if signed[r.AttestationName()] {
				r.Attestation = r.AttestationName()
			}
		}
		return err
	})
	return out, err
}

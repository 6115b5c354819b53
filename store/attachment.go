package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"

	"github.com/kiln-project/kiln"
)

// MaxAttachmentSize bounds one attachment: build logs and test reports, not
// image content (that goes to the ArtifactStore).
const MaxAttachmentSize = 32 << 20

var attachmentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// AddAttachment stores a write-once document with a version and sets
// a.Size and a.CreatedAt. EIMMUTABLE when the version already has an
// attachment of that name.
func (db *DB) AddAttachment(ctx context.Context, ref kiln.VersionRef, a *kiln.Attachment) error {
	if !attachmentNameRE.MatchString(a.Name) {
		return kiln.FieldErrorf(kiln.EINVALID, "name", "attachment name %q is not allowed; use 1–128 letters, digits, '.', '_' and '-', e.g. build.log", a.Name)
	}
	if len(a.Data) > MaxAttachmentSize {
		return kiln.FieldErrorf(kiln.EINVALID, "data", "attachment %s is %d bytes; the limit is %d (store large files as artifacts)", a.Name, len(a.Data), MaxAttachmentSize)
	}
	mediaType := a.MediaType
	if mediaType == "" {
		mediaType = "application/octet-stream"
	}
	data := a.Data
	if data == nil {
		data = []byte{}
	}
	var created = db.now()
	err := db.write(ctx, func(tx *tx) error {
		created = tx.now
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		_, err = tx.exec(ctx, `INSERT INTO version_attachments (version_id, name, media_type, size, data, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			id, a.Name, mediaType, len(data), data, tx.timeArg(tx.now))
		if isUnique(err) {
			return kiln.FieldErrorf(kiln.EIMMUTABLE, "name", "%s already has an attachment %s; attachments are write-once, add it under a new name", ref, a.Name)
		}
		if err != nil {
			return fmt.Errorf("add attachment %s to %s: %w", a.Name, ref, err)
		}
		return audit(ctx, tx, "version.attach", ref.String(), a.Name)
	})
	if err != nil {
		return err
	}
	a.MediaType, a.Size, a.CreatedAt = mediaType, int64(len(data)), created
	return nil
}

// Attachment returns one attachment with its content. ENOTFOUND when the
// version or the attachment does not exist.
func (db *DB) Attachment(ctx context.Context, ref kiln.VersionRef, name string) (*kiln.Attachment, error) {
	var a *kiln.Attachment
	err := db.read(ctx, func(tx *tx) error {
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		a = &kiln.Attachment{}
		err = tx.queryRow(ctx, `SELECT name, media_type, size, created_at, data FROM version_attachments WHERE version_id = ? AND name = ?`,
			id, name).Scan(&a.Name, &a.MediaType, &a.Size, dbTime{&a.CreatedAt}, &a.Data)
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "%s has no attachment %s; see `kiln version attachments %s`", ref, name, ref)
		}
		if err != nil {
			return fmt.Errorf("read attachment %s of %s: %w", name, ref, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return a, nil
}

// ListAttachments returns a version's attachments by name, without their
// content.
func (db *DB) ListAttachments(ctx context.Context, ref kiln.VersionRef) ([]*kiln.Attachment, error) {
	var as []*kiln.Attachment
	err := db.read(ctx, func(tx *tx) error {
		as = []*kiln.Attachment{}
		id, err := versionID(ctx, tx, ref)
		if err != nil {
			return err
		}
		return eachRow(ctx, tx, `SELECT name, media_type, size, created_at FROM version_attachments WHERE version_id = ? ORDER BY name`,
			[]any{id}, func(rows *sql.Rows) error {
				a := &kiln.Attachment{}
				if err := rows.Scan(&a.Name, &a.MediaType, &a.Size, dbTime{&a.CreatedAt}); err != nil {
					return fmt.Errorf("list attachments of %s: %w", ref, err)
				}
				as = append(as, a)
				return nil
			})
	})
	return as, err
}

// CountAttachmentsNamed returns how many versions have an attachment of
// that name: with sign.EnvelopeAttachment, how many versions are signed,
// which is why kiln must not start a new signing key silently.
func (db *DB) CountAttachmentsNamed(ctx context.Context, name string) (int64, error) {
	var n int64
	err := db.read(ctx, func(tx *tx) error {
		if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM version_attachments WHERE name = ?`, name).Scan(&n); err != nil {
			return fmt.Errorf("count attachments %s: %w", name, err)
		}
		return nil
	})
	return n, err
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/kiln-project/kiln"
)

// maxDescriptionLen bounds an image line's description (in bytes).
const maxDescriptionLen = 4096

// CreateImage records a new image line. It sets img.ID and img.CreatedAt.
// ECONFLICT when the name is taken.
func (db *DB) CreateImage(ctx context.Context, img *kiln.Image) error {
	if err := kiln.ValidateImageName(img.Name); err != nil {
		return err
	}
	if len(img.Description) > maxDescriptionLen || !utf8.ValidString(img.Description) {
		return kiln.FieldErrorf(kiln.EINVALID, "description", "description must be valid UTF-8 of at most %d bytes", maxDescriptionLen)
	}
	var id int64
	var created = db.now()
	err := db.write(ctx, func(tx *tx) error {
		created = tx.now
		err := tx.queryRow(ctx, `INSERT INTO images (name, description, latest_number, created_at) VALUES (?, ?, 0, ?) RETURNING id`,
			img.Name, img.Description, tx.timeArg(tx.now)).Scan(&id)
		if isUnique(err) {
			return kiln.FieldErrorf(kiln.ECONFLICT, "name", "image %s exists already; see `kiln image show %s`, or choose another name", img.Name, img.Name)
		}
		if err != nil {
			return fmt.Errorf("create image %s: %w", img.Name, err)
		}
		return audit(ctx, tx, "image.create", img.Name, "")
	})
	if err != nil {
		return err
	}
	img.ID, img.CreatedAt, img.LatestNumber = id, created, 0
	return nil
}

// FindImage returns the image line called name, with its latest version
// number. ENOTFOUND when there is none.
func (db *DB) FindImage(ctx context.Context, name string) (*kiln.Image, error) {
	var img *kiln.Image
	err := db.read(ctx, func(tx *tx) error {
		var err error
		img, err = findImage(ctx, tx, name)
		return err
	})
	return img, err
}

const imageColumns = `id, name, description, latest_number, created_at`

func scanImage(row interface{ Scan(...any) error }) (*kiln.Image, error) {
	img := &kiln.Image{}
	err := row.Scan(&img.ID, &img.Name, &img.Description, &img.LatestNumber, dbTime{&img.CreatedAt})
	return img, err
}

func findImage(ctx context.Context, tx *tx, name string) (*kiln.Image, error) {
	img, err := scanImage(tx.queryRow(ctx, `SELECT `+imageColumns+` FROM images WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imageNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("find image %s: %w", name, err)
	}
	return img, nil
}

func imageNotFound(name string) error {
	return kiln.Errorf(kiln.ENOTFOUND, "image %s does not exist; create it with `kiln image create %s`, or see `kiln image list`", name, name)
}

// ListImages returns every image line, by name.
func (db *DB) ListImages(ctx context.Context) ([]*kiln.Image, error) {
	var imgs []*kiln.Image
	err := db.read(ctx, func(tx *tx) error {
		rows, err := tx.query(ctx, `SELECT `+imageColumns+` FROM images ORDER BY name`)
		if err != nil {
			return fmt.Errorf("list images: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			img, err := scanImage(rows)
			if err != nil {
				return fmt.Errorf("list images: %w", err)
			}
			imgs = append(imgs, img)
		}
		return rows.Err()
	})
	return imgs, err
}

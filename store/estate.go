package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.EstateStore.
var _ kiln.EstateStore = (*DB)(nil)

const estateColumns = `name, dir, created_at, created_by`

func scanEstate(row rowScanner) (*kiln.Estate, error) {
	e := &kiln.Estate{}
	if err := row.Scan(&e.Name, &e.Dir, dbTime{&e.CreatedAt}, &e.CreatedBy); err != nil {
		return nil, err
	}
	return e, nil
}

// AddEstate registers an estate directory under a name (audited
// estate.add).
func (db *DB) AddEstate(ctx context.Context, e *kiln.Estate) error {
	if e == nil {
		return kiln.Errorf(kiln.EINVALID, "no estate given")
	}
	if err := e.Validate(); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		var name string
		err := tx.queryRow(ctx, `SELECT name FROM estates WHERE name = ? OR dir = ?`, e.Name, e.Dir).Scan(&name)
		switch {
		case err == nil && name == e.Name:
			return kiln.FieldErrorf(kiln.ECONFLICT, "name", "estate %s is registered already; remove it first with `kiln estate remove %s`", e.Name, e.Name)
		case err == nil:
			return kiln.FieldErrorf(kiln.ECONFLICT, "dir", "directory %s is registered already as estate %s", e.Dir, name)
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("add estate %s: %w", e.Name, err)
		}
		e.CreatedAt, e.CreatedBy = tx.now, kiln.ActorFrom(ctx)
		if _, err := tx.exec(ctx, `INSERT INTO estates (`+estateColumns+`) VALUES (?, ?, ?, ?)`,
			e.Name, e.Dir, tx.timeArg(e.CreatedAt), e.CreatedBy); err != nil {
			if isUnique(err) {
				return kiln.Errorf(kiln.ECONFLICT, "estate %s or directory %s was registered by another writer meanwhile", e.Name, e.Dir)
			}
			return fmt.Errorf("add estate %s: %w", e.Name, err)
		}
		return audit(ctx, tx, "estate.add", "estate "+e.Name, e.Dir)
	})
}

// ListEstates returns the registered estates by name.
func (db *DB) ListEstates(ctx context.Context) ([]*kiln.Estate, error) {
	var out []*kiln.Estate
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Estate{}
		return eachRow(ctx, tx, `SELECT `+estateColumns+` FROM estates ORDER BY name`, nil, func(rows *sql.Rows) error {
			e, err := scanEstate(rows)
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list estates: %w", err)
	}
	return out, nil
}

// FindEstate finds a registered estate by name.
func (db *DB) FindEstate(ctx context.Context, name string) (*kiln.Estate, error) {
	var e *kiln.Estate
	err := db.read(ctx, func(tx *tx) error {
		var err error
		e, err = scanEstate(tx.queryRow(ctx, `SELECT `+estateColumns+` FROM estates WHERE name = ?`, name))
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, estateNotFound(name)
	}
	if err != nil {
		return nil, fmt.Errorf("find estate %s: %w", name, err)
	}
	return e, nil
}

func estateNotFound(name string) error {
	return kiln.Errorf(kiln.ENOTFOUND, "no estate is registered as %q; an admin registers one on the server with `kiln estate add NAME DIR` (see `kiln estate list`)", name)
}

// RemoveEstate unregisters an estate (audited estate.remove); runs already
// queued from it still run.
func (db *DB) RemoveEstate(ctx context.Context, name string) error {
	return db.write(ctx, func(tx *tx) error {
		var dir string
		err := tx.queryRow(ctx, `DELETE FROM estates WHERE name = ? RETURNING dir`, name).Scan(&dir)
		if errors.Is(err, sql.ErrNoRows) {
			return estateNotFound(name)
		}
		if err != nil {
			return fmt.Errorf("remove estate %s: %w", name, err)
		}
		return audit(ctx, tx, "estate.remove", "estate "+name, dir)
	})
}

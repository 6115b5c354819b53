package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.PauseStore.
var _ kiln.PauseStore = (*DB)(nil)

// Pause records a pause, replacing the reason of an existing one (audited
// service.pause or environment.pause).
func (db *DB) Pause(ctx context.Context, p *kiln.Pause) error {
	if p == nil {
		return kiln.Errorf(kiln.EINVALID, "no pause given")
	}
	if err := p.Validate(); err != nil {
		return err
	}
	return db.write(ctx, func(tx *tx) error {
		p.Actor, p.At = kiln.ActorFrom(ctx), tx.now
		if _, err := tx.exec(ctx, `DELETE FROM pauses WHERE kind = ? AND name = ?`, string(p.Kind), p.Name); err != nil {
			return fmt.Errorf("pause %s %s: %w", p.Kind, p.Name, err)
		}
		if _, err := tx.exec(ctx, `INSERT INTO pauses (kind, name, actor, reason, at) VALUES (?, ?, ?, ?, ?)`,
			string(p.Kind), p.Name, p.Actor, p.Reason, tx.timeArg(p.At)); err != nil {
			return fmt.Errorf("pause %s %s: %w", p.Kind, p.Name, err)
		}
		return audit(ctx, tx, string(p.Kind)+".pause", string(p.Kind)+" "+p.Name, p.Reason)
	})
}

// Resume removes a pause (audited service.resume or environment.resume).
func (db *DB) Resume(ctx context.Context, kind kiln.PauseKind, name string) error {
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `DELETE FROM pauses WHERE kind = ? AND name = ?`, string(kind), name)
		if err != nil {
			return fmt.Errorf("resume %s %s: %w", kind, name, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "%s %s is not paused", kind, name)
		}
		return audit(ctx, tx, string(kind)+".resume", string(kind)+" "+name, "")
	})
}

// FindPause returns one pause; ENOTFOUND when there is none.
func (db *DB) FindPause(ctx context.Context, kind kiln.PauseKind, name string) (*kiln.Pause, error) {
	p := &kiln.Pause{}
	err := db.read(ctx, func(tx *tx) error {
		var k string
		return tx.queryRow(ctx, `SELECT kind, name, actor, reason, at FROM pauses WHERE kind = ? AND name = ?`, string(kind), name).
			Scan(&k, &p.Name, &p.Actor, &p.Reason, dbTime{&p.At})
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "%s %s is not paused", kind, name)
	}
	if err != nil {
		return nil, fmt.Errorf("find pause of %s %s: %w", kind, name, err)
	}
	p.Kind = kind
	return p, nil
}

// ListPauses returns every pause, environments first, by name.
func (db *DB) ListPauses(ctx context.Context) ([]*kiln.Pause, error) {
	out := []*kiln.Pause{}
	err := db.read(ctx, func(tx *tx) error {
		return eachRow(ctx, tx, `SELECT kind, name, actor, reason, at FROM pauses ORDER BY kind, name`, nil, func(rows *sql.Rows) error {
			p := &kiln.Pause{}
			var k string
			if err := rows.Scan(&k, &p.Name, &p.Actor, &p.Reason, dbTime{&p.At}); err != nil {
				return err
			}
			p.Kind = kiln.PauseKind(k)
			out = append(out, p)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list pauses: %w", err)
	}
	return out, nil
}

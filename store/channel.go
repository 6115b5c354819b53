package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.ChannelStore.
var _ kiln.ChannelStore = (*DB)(nil)

func scanChannel(row rowScanner) (*kiln.Channel, error) {
	c := &kiln.Channel{}
	if err := row.Scan(&c.Image, &c.Environment, &c.Version.Number, dbTime{&c.UpdatedAt}, &c.UpdatedBy); err != nil {
		return nil, err
	}
	c.Version.Image = c.Image
	c.Name = c.Version.String()
	return c, nil
}

// Channels lists channels of image (all images when empty), by image and
// environment.
func (db *DB) Channels(ctx context.Context, image string) ([]*kiln.Channel, error) {
	q := `SELECT image, environment, number, updated_at, updated_by FROM channels`
	var args []any
	if image != "" {
		q, args = q+` WHERE image = ?`, append(args, image)
	}
	q += ` ORDER BY image, environment`
	var out []*kiln.Channel
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Channel{}
		return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			c, err := scanChannel(rows)
			if err == nil {
				out = append(out, c)
			}
			return err
		})
	})
	return out, err
}

// FindChannel returns the version an environment's channel points at; when
// that version is revoked, the newest version the channel held that is
// neither revoked nor failed, with Revoked naming the one skipped
// (resolveChannel). ECONFLICT when there is none: a channel never
// resolves to nothing silently.
func (db *DB) FindChannel(ctx context.Context, image, env string) (*kiln.Channel, error) {
	var c *kiln.Channel
	err := db.read(ctx, func(tx *tx) error {
		var err error
		if c, err = findChannel(ctx, tx, image, env, false); err != nil {
			return err
		}
		return resolveChannel(ctx, tx, c)
	})
	return c, err
}

func findChannel(ctx context.Context, tx *tx, image, env string, lock bool) (*kiln.Channel, error) {
	q := `SELECT image, environment, number, updated_at, updated_by FROM channels WHERE image = ? AND environment = ?`
	if lock && tx.db.dialect == dialectPostgres {
		q += ` FOR UPDATE`
	}
	c, err := scanChannel(tx.queryRow(ctx, q, image, env))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "%s has no version in %s yet; promote one with `kiln promote %s-N --to %s`", image, env, image, env)
	}
	if err != nil {
		return nil, fmt.Errorf("find channel %s of %s: %w", env, image, err)
	}
	return c, nil
}

// Promote points env at ref, refusing a version that is not ready or has
// not been promoted to previous before.
func (db *DB) Promote(ctx context.Context, ref kiln.VersionRef, env, previous, reason string) (*kiln.Promotion, error) {
	if err := kiln.ValidateEnvironment("to", env); err != nil {
		return nil, err
	}
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	var p *kiln.Promotion
	err := db.write(ctx, func(tx *tx) error {
		v, err := findVersion(ctx, tx, ref)
		if err != nil {
			return err
		}
		if v.Status != kiln.StatusReady {
			return kiln.Errorf(kiln.ECONFLICT, "%s is %s; only ready versions can be promoted (it becomes ready when its pipeline's test and scan stages pass)", ref, v.Status)
		}
		if previous != "" {
			var n int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM promotions WHERE image = ? AND environment = ? AND number = ?`,
				ref.Image, previous, ref.Number).Scan(&n); err != nil {
				return fmt.Errorf("check %s was in %s: %w", ref, previous, err)
			}
			if n == 0 {
				return kiln.Errorf(kiln.ECONFLICT, "%s has not been in %s, the environment before %s; promote it there first (`kiln promote %s --to %s`)", ref, previous, env, ref, previous)
			}
		}
		prev := 0
		cur, err := findChannel(ctx, tx, ref.Image, env, true)
		switch {
		case err == nil:
			prev = cur.Version.Number
			if prev == ref.Number {
				return kiln.Errorf(kiln.ECONFLICT, "%s is already the version in %s", ref, env)
			}
		case kiln.ErrorCode(err) != kiln.ENOTFOUND:
			return err
		}
		p, err = moveChannel(ctx, tx, ref.Image, env, kiln.PromotionPromote, ref.Number, prev, reason)
		return err
	})
	return p, err
}

// Rollback points env back at the version it held before its current one
// was promoted there; a rollback onto a revoked version is refused unless
// forced (kiln.ChannelStore).
func (db *DB) Rollback(ctx context.Context, image, env, reason string, force bool) (*kiln.Promotion, error) {
	if err := validateReason(reason); err != nil {
		return nil, err
	}
	var p *kiln.Promotion
	err := db.write(ctx, func(tx *tx) error {
		cur, err := findChannel(ctx, tx, image, env, true)
		if err != nil {
			return err
		}
		prev, err := promotedAfter(ctx, tx, image, env, cur.Version.Number)
		if err != nil {
			return fmt.Errorf("find the version before %s in %s: %w", cur.Name, env, err)
		}
		if prev == 0 {
			return kiln.Errorf(kiln.ECONFLICT, "%s in %s has no earlier version to roll back to; promote the version you want with `kiln promote %s-N --to %s`", cur.Name, env, image, env)
		}
		target, err := findVersion(ctx, tx, kiln.VersionRef{Image: image, Number: prev})
		if err != nil {
			return err
		}
		if target.Status == kiln.StatusRevoked {
			if target.Revocation, err = findRevocation(ctx, tx, target.ID); err != nil {
				return err
			}
			if !force {
				next, err := rollbackCandidate(ctx, tx, image, env, prev, cur.Version.Number)
				if err != nil {
					return err
				}
				return revokedRollback(target, cur.Name, env, next)
			}
			if err := audit(ctx, tx, "channel.rollback.forced", image+"/"+env,
				fmt.Sprintf("forced rollback of %s to %s, which is %s", env, target.Name, kiln.DescribeRevocation(target))); err != nil {
				return err
			}
		}
		p, err = moveChannel(ctx, tx, image, env, kiln.PromotionRollback, prev, cur.Version.Number, reason)
		return err
	})
	return p, err
}

// promotedAfter returns the version env held before number was last
// promoted there (0: none).
func promotedAfter(ctx context.Context, tx *tx, image, env string, number int) (int, error) {
	var prev int
	err := tx.queryRow(ctx, `SELECT previous FROM promotions WHERE image = ? AND environment = ? AND kind = 'promote' AND number = ?
		ORDER BY id DESC LIMIT 1`, image, env, number).Scan(&prev)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return prev, err
}

// rollbackCandidate walks env's history back from the version from (the
// version before from, and so on) to the first that is neither revoked nor
// failed, skipping current; nil when there is none.
func rollbackCandidate(ctx context.Context, tx *tx, image, env string, from, current int) (*kiln.Version, error) {
	seen := map[int]bool{current: true}
	for n := from; n != 0 && !seen[n]; {
		seen[n] = true
		prev, err := promotedAfter(ctx, tx, image, env, n)
		if err != nil {
			return nil, fmt.Errorf("walk the history of %s in %s: %w", image, env, err)
		}
		if prev == 0 || seen[prev] {
			return nil, nil
		}
		v, err := findVersion(ctx, tx, kiln.VersionRef{Image: image, Number: prev})
		if err != nil {
			return nil, err
		}
		if v.Status != kiln.StatusRevoked && v.Status != kiln.StatusFailed {
			return v, nil
		}
		n = prev
	}
	return nil, nil
}

// revokedRollback is the refusal to roll env back from current onto the
// revoked version target, naming the revocation and what to do instead.
func revokedRollback(target *kiln.Version, current, env string, next *kiln.Version) error {
	instead := fmt.Sprintf("no earlier version in %s's history is free of revocation: promote the version you want with `kiln promote %s-N --to %s` (see `kiln version latest %s`)", env, target.Image, env, target.Image)
	if next != nil {
		instead = fmt.Sprintf("the next version back that is not revoked is %s (%s): `kiln promote %s --to %s`", next.Name, next.Status, next.Name, env)
	}
	return kiln.Errorf(kiln.ECONFLICT, "rolling %s back from %s would land on %s, which is %s; %s; or roll back all the same with --force (audited)",
		env, current, target.Name, kiln.DescribeRevocation(target), instead)
}

// moveChannel sets the channel, records the promotion, audits it and
// queues the "promoted" webhooks.
func moveChannel(ctx context.Context, tx *tx, image, env string, kind kiln.PromotionKind, number, prev int, reason string) (*kiln.Promotion, error) {
	actor := kiln.ActorFrom(ctx)
	if _, err := tx.exec(ctx, `INSERT INTO channels (image, environment, number, updated_at, updated_by) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (image, environment) DO UPDATE SET number = excluded.number, updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
		image, env, number, tx.timeArg(tx.now), actor); err != nil {
		return nil, fmt.Errorf("move channel %s of %s: %w", env, image, err)
	}
	p := &kiln.Promotion{Image: image, Environment: env, Kind: kind, Number: number, Previous: prev, Actor: actor, Reason: reason, Time: tx.now}
	if err := tx.queryRow(ctx, `INSERT INTO promotions (image, environment, kind, number, previous, actor, reason, time)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		image, env, string(kind), number, prev, actor, reason, tx.timeArg(tx.now)).Scan(&p.ID); err != nil {
		return nil, fmt.Errorf("record promotion: %w", err)
	}
	name := kiln.VersionRef{Image: image, Number: number}.String()
	detail := fmt.Sprintf("%s %s → %s", kind, env, name)
	if err := audit(ctx, tx, "channel."+string(kind), image+"/"+env, detail); err != nil {
		return nil, err
	}
	payload, _ := json.Marshal(map[string]any{
		"event": kiln.EventPromoted, "kind": kind, "image": image, "environment": env,
		"number": number, "name": name, "previous": prev, "actor": actor, "reason": reason, "time": tx.now,
	})
	if _, err := enqueueEvent(ctx, tx, kiln.EventPromoted, payload); err != nil {
		return nil, err
	}
	return p, nil
}

// Promotions lists channel moves newest first.
func (db *DB) Promotions(ctx context.Context, image, env string, limit int) ([]*kiln.Promotion, error) {
	conds := []string{"1 = 1"}
	var args []any
	if image != "" {
		conds, args = append(conds, "image = ?"), append(args, image)
	}
	if env != "" {
		conds, args = append(conds, "environment = ?"), append(args, env)
	}
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	var out []*kiln.Promotion
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Promotion{}
		return eachRow(ctx, tx, `SELECT id, image, environment, kind, number, previous, actor, reason, time FROM promotions WHERE `+
			strings.Join(conds, " AND ")+` ORDER BY id DESC LIMIT ?`, args, func(rows *sql.Rows) error {
			p := &kiln.Promotion{}
			var kind string
			if err := rows.Scan(&p.ID, &p.Image, &p.Environment, &kind, &p.Number, &p.Previous, &p.Actor, &p.Reason, dbTime{&p.Time}); err != nil {
				return err
			}
			p.Kind = kiln.PromotionKind(kind)
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kiln-project/kiln"
)

// resolveChannel replaces a revoked channel version by the newest version
// the channel held (every promotion and rollback is recorded) that is
// neither revoked nor failed, and sets c.Revoked. ECONFLICT naming the
// revocation when there is none.
func resolveChannel(ctx context.Context, tx *tx, c *kiln.Channel) error {
	var id int64
	var status string
	err := tx.queryRow(ctx, `SELECT v.id, v.status FROM versions v JOIN images i ON i.id = v.image_id WHERE i.name = ? AND v.number = ?`,
		c.Image, c.Version.Number).Scan(&id, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve channel %s of %s: %w", c.Environment, c.Image, err)
	}
	if kiln.Status(status) != kiln.StatusRevoked {
		return nil
	}
	why := "revoked"
	if r, err := findRevocation(ctx, tx, id); err != nil {
		return err
	} else if r != nil && r.Through != nil {
		why = "revoked through " + r.Through.String()
	}
	var n int
	err = tx.queryRow(ctx, `SELECT v.number FROM promotions p
		JOIN images i ON i.name = p.image JOIN versions v ON v.image_id = i.id AND v.number = p.number
		WHERE p.image = ? AND p.environment = ? AND v.status NOT IN ('revoked', 'failed')
		ORDER BY v.number DESC LIMIT 1`, c.Image, c.Environment).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return kiln.Errorf(kiln.ECONFLICT, "the %s channel of %s points at %s, which is %s, and it never held a version that is not; promote one with `kiln promote %s-N --to %s` (see `kiln version latest %s`)",
			c.Environment, c.Image, c.Version, why, c.Image, c.Environment, c.Image)
	}
	if err != nil {
		return fmt.Errorf("find a fallback for channel %s of %s: %w", c.Environment, c.Image, err)
	}
	revoked := c.Version
	c.Revoked = &revoked
	c.Version.Number = n
	c.Name = c.Version.String()
	return nil
}

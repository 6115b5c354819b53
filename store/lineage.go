package store

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/kiln-project/kiln"
)

// Lineage lists, for every image line whose latest version (highest
// number, whatever its status) was built on a base, that base, the newest
// ready version of the base's image line, and whether it is newer than the
// base used — the child line then needs a rebuild. Ordered by child image
// name.
func (db *DB) Lineage(ctx context.Context) ([]*kiln.Lineage, error) {
	var ls []*kiln.Lineage
	err := db.read(ctx, func(tx *tx) error {
		ls = nil
		var children []*kiln.Version
		var latestReady []sql.NullInt64
		err := eachRow(ctx, tx, versionSelect+`,
			(SELECT MAX(r.number) FROM versions r WHERE r.image_id = bv.image_id AND r.status = 'ready')`+
			versionFrom+` WHERE v.number = i.latest_number AND p.base_version_id IS NOT NULL ORDER BY i.name`, nil,
			func(rows *sql.Rows) error {
				var ready sql.NullInt64
				v, err := scanVersion(rows, &ready)
				if err != nil {
					return err
				}
				children = append(children, v)
				latestReady = append(latestReady, ready)
				return nil
			})
		if err != nil {
			return fmt.Errorf("lineage: %w", err)
		}
		if err := loadDetails(ctx, tx, children, false); err != nil {
			return err
		}
		for i, v := range children {
			l := &kiln.Lineage{Child: *v, Base: *v.Provenance.Base}
			if latestReady[i].Valid {
				l.LatestBaseReady = &kiln.VersionRef{Image: l.Base.Image, Number: int(latestReady[i].Int64)}
				l.OutOfDate = l.LatestBaseReady.Number > l.Base.Number
			}
			ls = append(ls, l)
		}
		return nil
	})
	if ls == nil && err == nil {
		ls = []*kiln.Lineage{}
	}
	return ls, err
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
)

// Usage counts instances per image version and environment from
// fleet_counts, which triggers keep exact, joined with the versions and
// each image's newest ready version: thousands of rows are read however
// many instances there are.
func (db *DB) Usage(ctx context.Context, f kiln.UsageFilter) ([]*kiln.Usage, error) {
	conds := []string{"c.state <> 'destroyed'", "c.instances > 0"}
	var args []any
	if f.Environment != "" {
		conds, args = append(conds, "c.environment = ?"), append(args, f.Environment)
	}
	if f.Image != "" {
		conds, args = append(conds, "c.image = ?"), append(args, f.Image)
	}
	q := `WITH latest AS (SELECT image_id, MAX(number) AS number FROM versions WHERE status = 'ready' GROUP BY image_id),
	counts AS (SELECT c.image, c.number, c.environment, SUM(c.instances) AS instances,
			SUM(CASE WHEN c.state = 'lost' THEN c.instances ELSE 0 END) AS lost
		FROM fleet_counts c WHERE ` + strings.Join(conds, " AND ") + `
		GROUP BY c.image, c.number, c.environment)
	SELECT counts.image, counts.number, counts.environment, counts.instances, counts.lost,
		v.status, v.created_at, COALESCE(latest.number, 0)
	FROM counts
	LEFT JOIN images i ON i.name = counts.image
	LEFT JOIN versions v ON v.image_id = i.id AND v.number = counts.number
	LEFT JOIN latest ON latest.image_id = i.id
	ORDER BY counts.image, counts.number, counts.environment`
	var out []*kiln.Usage
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Usage{}
		return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			u := &kiln.Usage{}
			var status sql.NullString
			var instances, lost int64
			if err := rows.Scan(&u.Image, &u.Number, &u.Environment, &instances, &lost, &status, dbTime{&u.BuiltAt}, &u.LatestReady); err != nil {
				return fmt.Errorf("read usage: %w", err)
			}
			u.Instances, u.Lost = int(instances), int(lost)
			u.Known = status.Valid
			u.Status = kiln.Status(status.String)
			out = append(out, u)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Manifests returns every version with its origin, base and parent, and
// only the installed packages whose name or source is in sources.
func (db *DB) Manifests(ctx context.Context, sources []string) ([]*kiln.PackageManifest, error) {
	var out []*kiln.PackageManifest
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.PackageManifest{}
		byID := map[int64]*kiln.PackageManifest{}
		if err := eachRow(ctx, tx, `SELECT v.id, i.name, v.number, v.status, pi.name, pv.number, bi.name, bv.number,
			(SELECT s.ref FROM version_sources s WHERE s.version_id = v.id AND s.kind = 'origin' ORDER BY s.position LIMIT 1)
			FROM versions v `+versionJoins+` ORDER BY i.name, v.number`, nil, func(rows *sql.Rows) error {
			var id int64
			m := &kiln.PackageManifest{Packages: []kiln.Package{}}
			var status string
			var pImg, bImg, origin sql.NullString
			var pNum, bNum sql.NullInt64
			if err := rows.Scan(&id, &m.Version.Image, &m.Version.Number, &status, &pImg, &pNum, &bImg, &bNum, &origin); err != nil {
				return err
			}
			m.Status, m.Origin = kiln.Status(status), origin.String
			if pImg.Valid {
				m.Parent = &kiln.VersionRef{Image: pImg.String, Number: int(pNum.Int64)}
			}
			if bImg.Valid {
				m.Base = &kiln.VersionRef{Image: bImg.String, Number: int(bNum.Int64)}
			}
			byID[id] = m
			out = append(out, m)
			return nil
		}); err != nil {
			return fmt.Errorf("list versions: %w", err)
		}
		sources = slices.Compact(slices.Sorted(slices.Values(sources)))
		for start := 0; start < len(sources); start += detailBatch {
			batch := sources[start:min(start+detailBatch, len(sources))]
			args := make([]any, 0, 2*len(batch))
			for _, s := range batch {
				args = append(args, s)
			}
			args = append(args, args...)
			if err := eachRow(ctx, tx, `SELECT version_id, name, version, architecture, source, source_version FROM version_packages
				WHERE name IN (`+placeholders(len(batch))+`) OR source IN (`+placeholders(len(batch))+`)`, args, func(rows *sql.Rows) error {
				var id int64
				var pk kiln.Package
				if err := rows.Scan(&id, &pk.Name, &pk.Version, &pk.Architecture, &pk.Source, &pk.SourceVersion); err != nil {
					return err
				}
				if m := byID[id]; m != nil {
					m.Packages = append(m.Packages, pk)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("load packages: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetAgePolicy sets (or replaces) an environment's age limit.
func (db *DB) SetAgePolicy(ctx context.Context, p *kiln.AgePolicy) error {
	if p == nil || p.MaxAge <= 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "max_age", "an age limit must be positive, e.g. 90d")
	}
	if p.Environment == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "environment", "an age policy needs an environment, e.g. --env prod")
	}
	return db.write(ctx, func(tx *tx) error {
		p.UpdatedAt = tx.now
		p.UpdatedBy = kiln.ActorFrom(ctx)
		_, err := tx.exec(ctx, `INSERT INTO fleet_policies (environment, max_age_seconds, updated_at, updated_by) VALUES (?, ?, ?, ?)
			ON CONFLICT (environment) DO UPDATE SET max_age_seconds = excluded.max_age_seconds,
				updated_at = excluded.updated_at, updated_by = excluded.updated_by`,
			p.Environment, int64(p.MaxAge), tx.timeArg(p.UpdatedAt), p.UpdatedBy)
		if err != nil {
			return fmt.Errorf("set age policy of %s: %w", p.Environment, err)
		}
		return nil
	})
}

// AgePolicies lists the age limits by environment.
func (db *DB) AgePolicies(ctx context.Context) ([]*kiln.AgePolicy, error) {
	var out []*kiln.AgePolicy
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.AgePolicy{}
		return eachRow(ctx, tx, `SELECT environment, max_age_seconds, updated_at, updated_by FROM fleet_policies ORDER BY environment`, nil,
			func(rows *sql.Rows) error {
				p := &kiln.AgePolicy{}
				var secs int64
				if err := rows.Scan(&p.Environment, &secs, dbTime{&p.UpdatedAt}, &p.UpdatedBy); err != nil {
					return err
				}
				p.MaxAge = kiln.Age(secs)
				out = append(out, p)
				return nil
			})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteAgePolicy removes an environment's age limit.
func (db *DB) DeleteAgePolicy(ctx context.Context, env string) error {
	return db.write(ctx, func(tx *tx) error {
		res, err := tx.exec(ctx, `DELETE FROM fleet_policies WHERE environment = ?`, env)
		if err != nil {
			return fmt.Errorf("delete age policy of %s: %w", env, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "environment %q has no age policy; see `kiln policy list`", env)
		}
		return nil
	})
}

package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Usage counts instances per image version and environment from
// fleet_counts, which is kept exact as instances change: tens of thousands
// of counts at most, however many instances there are. The versions'
// status and build time and each image's newest ready version are read in
// a second query and joined here.
//
// Both queries return one row per image, its counts (or versions) packed
// into lists in text values: reading a million-instance fleet's 30,000 counts
// as rows cost more in the driver (about 1 µs per column on SQLite) than
// in the database, and the join per counted row in SQL cost more again
// (docs/benchmarks.md, "Fleet").
func (db *DB) Usage(ctx context.Context, f kiln.UsageFilter) ([]*kiln.Usage, error) {
	conds := []string{"instances > 0", "state <> 'destroyed'"}
	var args []any
	if f.Environment != "" {
		conds, args = append(conds, "environment = ?"), append(args, f.Environment)
	}
	agg, rs, text := "group_concat", "char(30)", ""
	created, builtLayout := "v.created_at", sqliteTimeLayout
	if db.dialect == dialectPostgres {
		agg, rs, text = "string_agg", "chr(30)", "::text"
		// "2026-06-01 12:00:00.5" in UTC (DateStyle ISO, set below):
		// half the cost of to_char for 10,000 versions.
		created, builtLayout = `(v.created_at AT TIME ZONE 'UTC')::text`, "2006-01-02 15:04:05" // fractions are accepted
	}
	var vargs []any
	vq := `SELECT i.name, ` + agg + `(v.number` + text + `, ','), ` + agg + `(v.status, ','), ` + agg + `(` + created + `, ',')
		FROM versions v JOIN images i ON i.id = v.image_id`
	if f.Image != "" {
		conds, args = append(conds, "image = ?"), append(args, f.Image)
		vq, vargs = vq+` WHERE i.name = ?`, []any{f.Image}
	}
	vq += ` GROUP BY i.name`
	// Four lists per image, in the same order: one concatenation per value
	// costs less than concatenating each count's fields first.
	q := `SELECT image, ` + agg + `(number` + text + `, ','), ` + agg + `(environment, ` + rs + `), ` + agg + `(state, ','), ` + agg + `(instances` + text + `, ',')
		FROM fleet_counts WHERE ` + strings.Join(conds, " AND ") + ` GROUP BY image ORDER BY image`
	var out []*kiln.Usage
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Usage{}
		if db.dialect == dialectPostgres {
			if _, err := tx.exec(ctx, `SELECT set_config('DateStyle', 'ISO', true)`); err != nil {
				return fmt.Errorf("read usage: %w", err)
			}
		}
		if err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			var image, numbers, envs, states, instances string
			if err := rows.Scan(&image, &numbers, &envs, &states, &instances); err != nil {
				return fmt.Errorf("read usage: %w", err)
			}
			var err error
			out, err = appendUsage(out, image, numbers, envs, states, instances)
			return err
		}); err != nil {
			return err
		}
		if len(out) == 0 {
			return nil
		}
		// Per image, its versions indexed by number (numbers count up from
		// 1): the usage rows look them up without hashing 10,000 keys.
		type info struct {
			known   bool
			status  kiln.Status
			builtAt time.Time
		}
		type imageVersions struct {
			byNumber []info
			latest   int
		}
		images := map[string]*imageVersions{}
		if err := eachRow(ctx, tx, vq, vargs, func(rows *sql.Rows) error {
			var image, numbers, statuses, built string
			if err := rows.Scan(&image, &numbers, &statuses, &built); err != nil {
				return fmt.Errorf("read versions: %w", err)
			}
			iv := &imageVersions{byNumber: make([]info, 0, strings.Count(numbers, ",")+2)}
			images[image] = iv
			for num := range strings.SplitSeq(numbers, ",") {
				var status, at string
				status, statuses, _ = strings.Cut(statuses, ",")
				at, built, _ = strings.Cut(built, ",")
				n, err := strconv.Atoi(num)
				if err != nil || n < 1 {
					return fmt.Errorf("read versions of %s: number %q", image, num)
				}
				in := info{known: true, status: kiln.Status(status)}
				// The layout this query produces first: dbTime.parse tries
				// four, which cost 20 ms for 10,000 versions.
				t, err := time.Parse(builtLayout, at)
				if err == nil {
					in.builtAt = t.UTC()
				} else if err := (dbTime{&in.builtAt}).parse(at); err != nil {
					return fmt.Errorf("read versions of %s: %w", image, err)
				}
				if n >= len(iv.byNumber) {
					iv.byNumber = slices.Grow(iv.byNumber, n+1-len(iv.byNumber))[:n+1]
				}
				iv.byNumber[n] = in
				if in.status == kiln.StatusReady && n > iv.latest {
					iv.latest = n
				}
			}
			return nil
		}); err != nil {
			return err
		}
		var iv *imageVersions
		for i, u := range out {
			if i == 0 || u.Image != out[i-1].Image {
				iv = images[u.Image]
			}
			if iv == nil {
				continue
			}
			if u.Number < len(iv.byNumber) {
				if in := iv.byNumber[u.Number]; in.known {
					u.Known, u.Status, u.BuiltAt = true, in.status, in.builtAt
				}
			}
			u.LatestReady = iv.latest
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// appendUsage appends one image's usage rows, sorted by number and
// environment, from its packed counts: lists of the same length, numbers,
// states and instance counts separated by commas, environments by the
// ASCII record separator (which names cannot contain).
func appendUsage(out []*kiln.Usage, image, numbers, envs, states, instances string) ([]*kiln.Usage, error) {
	type count struct {
		number    int
		env       string
		instances int
		lost      bool
	}
	cs := make([]count, 0, strings.Count(numbers, ",")+1)
	for num := range strings.SplitSeq(numbers, ",") {
		var env, state, inst string
		env, envs, _ = strings.Cut(envs, "\x1e")
		state, states, _ = strings.Cut(states, ",")
		inst, instances, _ = strings.Cut(instances, ",")
		number, err1 := strconv.Atoi(num)
		n, err2 := strconv.Atoi(inst)
		if err1 != nil || err2 != nil || state == "" {
			return nil, fmt.Errorf("read usage of %s: counts do not line up at version %q", image, num)
		}
		cs = append(cs, count{number: number, env: env, instances: n, lost: state == string(kiln.InstanceLost)})
	}
	// SQLite reads fleet_counts in key order already; PostgreSQL may not.
	byKey := func(a, b count) int { return cmp.Or(cmp.Compare(a.number, b.number), strings.Compare(a.env, b.env)) }
	if !slices.IsSortedFunc(cs, byKey) {
		slices.SortFunc(cs, byKey)
	}
	block := make([]kiln.Usage, 0, len(cs)) // one allocation for the image's rows
	var last *kiln.Usage
	for _, c := range cs {
		if last == nil || last.Number != c.number || last.Environment != c.env {
			block = append(block, kiln.Usage{Image: image, Number: c.number, Environment: c.env})
			last = &block[len(block)-1]
			out = append(out, last)
		}
		last.Instances += c.instances
		if c.lost {
			last.Lost += c.instances
		}
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
		return audit(ctx, tx, "policy.max-age", "environment "+p.Environment, p.MaxAge.String())
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
		return audit(ctx, tx, "policy.delete", "environment "+env, "")
	})
}

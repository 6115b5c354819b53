package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/kiln-project/kiln"
)

// PutAdvisories records advs in one transaction. An advisory whose id is
// stored with the same content is left alone, so importing a file twice
// changes nothing; one with other content is replaced whole.
func (db *DB) PutAdvisories(ctx context.Context, advs []*kiln.Advisory) (int, error) {
	docs, err := encodeAdvisories(advs)
	if err != nil {
		return 0, err
	}
	created := 0
	err = db.write(ctx, func(tx *tx) error {
		n, updated, err := putAdvisories(ctx, tx, advs, docs, "")
		if err != nil {
			return err
		}
		created = n
		return audit(ctx, tx, "advisory.put", advisoryTarget(advs),
			fmt.Sprintf("%d new, %d replaced, %d unchanged", created, updated, len(advs)-created-updated))
	})
	return created, err
}

// encodeAdvisories validates advs and returns their JSON documents.
func encodeAdvisories(advs []*kiln.Advisory) ([]string, error) {
	docs := make([]string, len(advs))
	seen := make(map[string]int, len(advs))
	for i, a := range advs {
		if err := a.Validate(); err != nil {
			if len(advs) > 1 {
				return nil, fmt.Errorf("advisory %d (%s): %w", i, a.ID, err)
			}
			return nil, err
		}
		if j, dup := seen[a.ID]; dup {
			return nil, kiln.Errorf(kiln.ECONFLICT, "advisory %s is given twice (%d and %d); give each id once", a.ID, j, i)
		}
		seen[a.ID] = i
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("encode advisory %s: %w", a.ID, err)
		}
		docs[i] = string(b)
	}
	return docs, nil
}

// putAdvisories upserts advs (with their encoded docs) in tx. feed, when
// not empty, names the advisory source that brings them: it becomes their
// owner, even of an advisory stored before by hand or by another source.
func putAdvisories(ctx context.Context, tx *tx, advs []*kiln.Advisory, docs []string, feed string) (created, updated int, err error) {
	for i, a := range advs {
		var old, oldFeed string
		err := tx.queryRow(ctx, `SELECT document, feed FROM advisories WHERE id = ?`, a.ID).Scan(&old, &oldFeed)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created++
			if _, err := tx.exec(ctx, `INSERT INTO advisories (id, source, summary, modified, withdrawn, document, created_at, updated_at, feed)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, a.ID, string(a.Source), a.Summary, tx.timeArg(a.Modified), tx.timeArg(a.Withdrawn),
				docs[i], tx.timeArg(tx.now), tx.timeArg(tx.now), feed); err != nil {
				return 0, 0, fmt.Errorf("insert advisory %s: %w", a.ID, err)
			}
		case err != nil:
			return 0, 0, fmt.Errorf("find advisory %s: %w", a.ID, err)
		case old == docs[i]:
			if feed != "" && oldFeed != feed {
				if _, err := tx.exec(ctx, `UPDATE advisories SET feed = ? WHERE id = ?`, feed, a.ID); err != nil {
					return 0, 0, fmt.Errorf("update advisory %s: %w", a.ID, err)
				}
			}
			continue
		default:
			updated++
			owner := feed
			if owner == "" {
				owner = oldFeed // a hand import keeps the source's ownership
			}
			if _, err := tx.exec(ctx, `UPDATE advisories SET source = ?, summary = ?, modified = ?, withdrawn = ?, document = ?, updated_at = ?, feed = ? WHERE id = ?`,
				string(a.Source), a.Summary, tx.timeArg(a.Modified), tx.timeArg(a.Withdrawn), docs[i], tx.timeArg(tx.now), owner, a.ID); err != nil {
				return 0, 0, fmt.Errorf("update advisory %s: %w", a.ID, err)
			}
			for _, t := range []string{"advisory_fixed_in", "advisory_packages"} {
				if _, err := tx.exec(ctx, `DELETE FROM `+t+` WHERE advisory_id = ?`, a.ID); err != nil {
					return 0, 0, fmt.Errorf("update advisory %s: %w", a.ID, err)
				}
			}
		}
		for _, f := range a.FixedIn {
			if _, err := tx.exec(ctx, `INSERT INTO advisory_fixed_in (advisory_id, image, number) VALUES (?, ?, ?)`, a.ID, f.Image, f.Number); err != nil {
				return 0, 0, fmt.Errorf("insert fixed-in %s of %s: %w", f, a.ID, err)
			}
		}
		var names []string
		for _, p := range a.Packages {
			names = append(names, p.Name)
		}
		for _, n := range slices.Compact(slices.Sorted(slices.Values(names))) {
			if _, err := tx.exec(ctx, `INSERT INTO advisory_packages (advisory_id, name) VALUES (?, ?)`, a.ID, n); err != nil {
				return 0, 0, fmt.Errorf("insert package %s of %s: %w", n, a.ID, err)
			}
		}
	}
	return created, updated, nil
}

// advisoryTarget names the advisories of one put in the audit log: the id
// of one, or the first ids of many.
func advisoryTarget(advs []*kiln.Advisory) string {
	if len(advs) == 1 {
		return "advisory " + advs[0].ID
	}
	ids := make([]string, 0, 3)
	for _, a := range advs[:min(3, len(advs))] {
		ids = append(ids, a.ID)
	}
	more := ""
	if len(advs) > 3 {
		more = ", …"
	}
	return fmt.Sprintf("%d advisories (%s%s)", len(advs), strings.Join(ids, ", "), more)
}

// FindAdvisory returns the stored advisory whole.
func (db *DB) FindAdvisory(ctx context.Context, id string) (*kiln.Advisory, error) {
	var a *kiln.Advisory
	err := db.read(ctx, func(tx *tx) error {
		var doc string
		err := tx.queryRow(ctx, `SELECT document FROM advisories WHERE id = ?`, id).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.Errorf(kiln.ENOTFOUND, "no advisory %s; add it with `kiln advisory add %s --fixed-in IMAGE-N` or import it, see `kiln advisory list`", id, id)
		}
		if err != nil {
			return fmt.Errorf("find advisory %s: %w", id, err)
		}
		a = &kiln.Advisory{}
		if err := json.Unmarshal([]byte(doc), a); err != nil {
			return fmt.Errorf("decode advisory %s: %w", id, err)
		}
		return nil
	})
	return a, err
}

// advisoryBatch is how many package names one query of
// AdvisoriesForPackages binds (far under SQLite's and PostgreSQL's limits
// on parameters).
const advisoryBatch = 500

// AdvisoriesForPackages returns the whole advisories naming any of names
// (source packages), sorted by id, in one query per 500 names and one
// read transaction.
func (db *DB) AdvisoriesForPackages(ctx context.Context, names []string) ([]*kiln.Advisory, error) {
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	var out []*kiln.Advisory
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Advisory{}
		seen := map[string]bool{}
		for chunk := range slices.Chunk(names, advisoryBatch) {
			args := make([]any, len(chunk))
			for i, n := range chunk {
				args[i] = n
			}
			q := `SELECT a.id, a.document FROM advisories a WHERE a.id IN (SELECT p.advisory_id FROM advisory_packages p WHERE p.name IN (` +
				strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ") + `)) ORDER BY a.id`
			if err := eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
				var id, doc string
				if err := rows.Scan(&id, &doc); err != nil {
					return err
				}
				if seen[id] {
					return nil
				}
				seen[id] = true
				a := &kiln.Advisory{}
				if err := json.Unmarshal([]byte(doc), a); err != nil {
					return fmt.Errorf("decode advisory %s: %w", id, err)
				}
				out = append(out, a)
				return nil
			}); err != nil {
				return fmt.Errorf("advisories for %d packages: %w", len(names), err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b *kiln.Advisory) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// ListAdvisories returns matching advisories sorted by id with their
// fixed-in versions but without packages and details.
func (db *DB) ListAdvisories(ctx context.Context, f kiln.AdvisoryFilter) ([]*kiln.Advisory, int, error) {
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return nil, 0, err
	}
	conds := []string{"1 = 1"}
	var args []any
	if f.Source != "" {
		conds, args = append(conds, "a.source = ?"), append(args, string(f.Source))
	}
	if f.FixedIn {
		conds = append(conds, "EXISTS (SELECT 1 FROM advisory_fixed_in x WHERE x.advisory_id = a.id)")
	}
	if f.Package != "" {
		conds, args = append(conds, "EXISTS (SELECT 1 FROM advisory_packages p WHERE p.advisory_id = a.id AND p.name = ?)"), append(args, f.Package)
	}
	where := strings.Join(conds, " AND ")
	q := `SELECT a.id, a.source, a.summary, a.modified, a.withdrawn, COUNT(*) OVER () FROM advisories a WHERE ` + where + ` ORDER BY a.id`
	q, qargs := db.paged(q, args, f.Limit, f.Offset)
	var out []*kiln.Advisory
	total := 0
	err := db.read(ctx, func(tx *tx) error {
		out, total = []*kiln.Advisory{}, 0
		byID := map[string]*kiln.Advisory{}
		if err := eachRow(ctx, tx, q, qargs, func(rows *sql.Rows) error {
			a := &kiln.Advisory{}
			var src string
			if err := rows.Scan(&a.ID, &src, &a.Summary, dbTime{&a.Modified}, dbTime{&a.Withdrawn}, &total); err != nil {
				return err
			}
			a.Source = kiln.AdvisorySource(src)
			byID[a.ID] = a
			out = append(out, a)
			return nil
		}); err != nil {
			return fmt.Errorf("list advisories: %w", err)
		}
		if pastEnd(len(out), f.Offset) {
			return tx.queryRow(ctx, `SELECT COUNT(*) FROM advisories a WHERE `+where, args...).Scan(&total)
		}
		if len(out) == 0 {
			return nil
		}
		return eachRow(ctx, tx, `SELECT x.advisory_id, x.image, x.number FROM advisory_fixed_in x JOIN (`+
			strings.Replace(q, `SELECT a.id, a.source, a.summary, a.modified, a.withdrawn, COUNT(*) OVER ()`, `SELECT a.id`, 1)+
			`) page ON page.id = x.advisory_id ORDER BY x.advisory_id, x.image`, qargs, func(rows *sql.Rows) error {
			var id string
			var r kiln.VersionRef
			if err := rows.Scan(&id, &r.Image, &r.Number); err != nil {
				return err
			}
			if a := byID[id]; a != nil {
				a.FixedIn = append(a.FixedIn, r)
			}
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// DeleteAdvisory removes an advisory.
func (db *DB) DeleteAdvisory(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *tx) error {
		for _, t := range []string{"advisory_fixed_in", "advisory_packages"} {
			if _, err := tx.exec(ctx, `DELETE FROM `+t+` WHERE advisory_id = ?`, id); err != nil {
				return fmt.Errorf("delete advisory %s: %w", id, err)
			}
		}
		res, err := tx.exec(ctx, `DELETE FROM advisories WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete advisory %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "no advisory %s; see `kiln advisory list`", id)
		}
		return audit(ctx, tx, "advisory.delete", "advisory "+id, "")
	})
}

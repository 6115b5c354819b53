package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// CreateVersion records a build as the image's next version, with status
// candidate, its provenance, free-form tags and a history entry, in one
// transaction. The number is taken by incrementing images.latest_number in
// that transaction (UPDATE … RETURNING): the row lock on PostgreSQL and the
// write lock on SQLite make concurrent callers take 1, 2, 3… without gaps
// or duplicates, and a failed call gives its number back.
//
// Errors: EINVALID for bad input; ENOTFOUND for an unknown image, or a
// parent or base version that does not exist (Field "parent" or "base").
func (db *DB) CreateVersion(ctx context.Context, nv *kiln.NewVersion) (*kiln.Version, error) {
	if nv == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "no version given")
	}
	if err := nv.Validate(); err != nil {
		return nil, err
	}
	if err := checkDuplicates(&nv.Provenance); err != nil {
		return nil, err
	}
	if nv.Seal == nil && db.seal != nil {
		cp := *nv
		cp.Seal = db.seal
		nv = &cp
	}
	var v *kiln.Version
	err := db.write(ctx, func(tx *tx) error {
		var err error
		v, err = createVersion(ctx, tx, nv)
		return err
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// checkDuplicates refuses a package listed twice for one architecture,
// which dpkg cannot have installed.
func checkDuplicates(p *kiln.Provenance) error {
	seen := make(map[[2]string]int, len(p.Packages))
	for i, pk := range p.Packages {
		k := [2]string{pk.Name, pk.Architecture}
		if j, dup := seen[k]; dup {
			return kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("packages[%d]", i),
				"package %s (%s) is listed twice (also packages[%d]); list each installed package once", pk.Name, pk.Architecture, j)
		}
		seen[k] = i
	}
	return nil
}

func createVersion(ctx context.Context, tx *tx, nv *kiln.NewVersion) (*kiln.Version, error) {
	var imageID int64
	var number int
	err := tx.queryRow(ctx, `UPDATE images SET latest_number = latest_number + 1 WHERE name = ? RETURNING id, latest_number`,
		nv.Image).Scan(&imageID, &number)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, imageNotFound(nv.Image)
	}
	if err != nil {
		return nil, fmt.Errorf("number version of %s: %w", nv.Image, err)
	}
	p := nv.Provenance
	parentID, err := referencedVersion(ctx, tx, "parent", p.Parent)
	if err != nil {
		return nil, err
	}
	baseID, err := referencedVersion(ctx, tx, "base", p.Base)
	if err != nil {
		return nil, err
	}

	v := &kiln.Version{
		Image:     nv.Image,
		Number:    number,
		Name:      kiln.VersionRef{Image: nv.Image, Number: number}.String(),
		SemVer:    nv.SemVer,
		Status:    kiln.StatusCandidate,
		CreatedAt: tx.now,
		UpdatedAt: tx.now,
	}
	if err := tx.queryRow(ctx, `INSERT INTO versions (image_id, number, semver, status, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		imageID, number, nv.SemVer, string(v.Status), tx.timeArg(tx.now), tx.timeArg(tx.now)).Scan(&v.ID); err != nil {
		return nil, fmt.Errorf("insert version %s: %w", v.Name, err)
	}

	var artRef, artDigest sql.NullString
	var artSize sql.NullInt64
	if a := p.Artifact; a != nil {
		artRef = sql.NullString{String: a.Ref, Valid: true}
		artDigest = sql.NullString{String: a.Digest, Valid: true}
		artSize = sql.NullInt64{Int64: a.Size, Valid: true}
	}
	if _, err := tx.exec(ctx, `INSERT INTO provenance (version_id, method, parent_version_id, base_version_id,
		artifact_ref, artifact_digest, artifact_size, built_by, recorded_by, started_at, finished_at,
		source_date_epoch, source_date_epoch_from)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		v.ID, string(p.Method), parentID, baseID, artRef, artDigest, artSize, p.BuiltBy, p.RecordedBy,
		tx.timeArg(p.StartedAt), tx.timeArg(p.FinishedAt), p.SourceDateEpoch, p.SourceDateEpochFrom); err != nil {
		return nil, fmt.Errorf("insert provenance of %s: %w", v.Name, err)
	}
	if a := p.Artifact; a != nil && p.Method == kiln.MethodExternal {
		// What a server made from it may check in by (0030).
		for _, name := range kiln.ExternalNames(a.Ref) {
			if _, err := tx.exec(ctx, `INSERT INTO external_artifacts (artifact, version_id) VALUES (?, ?)`, name, v.ID); err != nil {
				return nil, fmt.Errorf("record the artifact names of %s: %w", v.Name, err)
			}
		}
	}
	if a := p.Artifact; a != nil {
		for i, l := range a.Layers {
			if _, err := tx.exec(ctx, `INSERT INTO artifact_layers (version_id, position, digest, diff_id, size, media_type) VALUES (?, ?, ?, ?, ?, ?)`,
				v.ID, i, l.Digest, l.DiffID, l.Size, l.MediaType); err != nil {
				return nil, fmt.Errorf("insert layer %d of %s: %w", i, v.Name, err)
			}
		}
	}
	for i, s := range p.Sources {
		if _, err := tx.exec(ctx, `INSERT INTO version_sources (version_id, position, kind, ref, digest) VALUES (?, ?, ?, ?, ?)`,
			v.ID, i, string(s.Kind), s.Ref, s.Digest); err != nil {
			return nil, fmt.Errorf("insert source %d of %s: %w", i, v.Name, err)
		}
	}
	if err := insertPackages(ctx, tx, v.ID, p.Packages); err != nil {
		return nil, fmt.Errorf("insert packages of %s: %w", v.Name, err)
	}
	for _, a := range p.Artifacts {
		if _, err := tx.exec(ctx, `INSERT INTO version_artifacts (version_id, format, ref, digest, size) VALUES (?, ?, ?, ?, ?)`,
			v.ID, string(a.Format), a.Ref, a.Digest, a.Size); err != nil {
			return nil, fmt.Errorf("insert %s artifact of %s: %w", a.Format, v.Name, err)
		}
	}

	if err := insertHistory(ctx, tx, v.ID, "status", "", string(kiln.StatusCandidate), "created"); err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(nv.Tags)) {
		if _, err := tx.exec(ctx, `INSERT INTO version_tags (version_id, key, value) VALUES (?, ?, ?)`, v.ID, k, nv.Tags[k]); err != nil {
			return nil, fmt.Errorf("insert tag %s of %s: %w", k, v.Name, err)
		}
		if err := insertHistory(ctx, tx, v.ID, "tag:"+k, "", nv.Tags[k], "created"); err != nil {
			return nil, err
		}
	}

	detail := string(p.Method)
	if p.Artifact != nil {
		detail += ", artifact " + p.Artifact.Digest
	}
	for _, a := range p.Artifacts {
		detail += fmt.Sprintf(", %s %s", a.Format, a.Digest)
	}
	if err := audit(ctx, tx, "version.create", v.Name, detail); err != nil {
		return nil, err
	}

	v.Tags = make(kiln.Tags, len(nv.Tags)+3)
	maps.Copy(v.Tags, nv.Tags)
	v.Provenance = copyProvenance(p)
	setSystemTags(v)
	if nv.Seal != nil {
		a, err := nv.Seal(v)
		if err != nil {
			return nil, fmt.Errorf("seal %s: %w", v.Name, err)
		}
		if a == nil {
			return v, nil
		}
		if _, err := tx.exec(ctx, `INSERT INTO version_attachments (version_id, name, media_type, size, data, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			v.ID, a.Name, a.MediaType, len(a.Data), a.Data, tx.timeArg(tx.now)); err != nil {
			return nil, fmt.Errorf("store the seal of %s: %w", v.Name, err)
		}
	}
	return v, nil
}

// packageBatch is how many packages one INSERT carries (6 parameters each,
// well under SQLite's and PostgreSQL's parameter limits).
const packageBatch = 200

func insertPackages(ctx context.Context, tx *tx, versionID int64, pkgs []kiln.Package) error {
	for start := 0; start < len(pkgs); start += packageBatch {
		batch := pkgs[start:min(start+packageBatch, len(pkgs))]
		args := make([]any, 0, 6*len(batch))
		var q strings.Builder
		q.WriteString(`INSERT INTO version_packages (version_id, name, version, architecture, source, source_version) VALUES `)
		for i, pk := range batch {
			if i > 0 {
				q.WriteString(", ")
			}
			q.WriteString("(?, ?, ?, ?, ?, ?)")
			args = append(args, versionID, pk.Name, pk.Version, pk.Architecture, pk.Source, pk.SourceVersion)
		}
		if _, err := tx.exec(ctx, q.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// referencedVersion returns the id of the parent or base version, NULL when
// ref is nil, and ENOTFOUND naming field when it does not exist.
func referencedVersion(ctx context.Context, tx *tx, field string, ref *kiln.VersionRef) (sql.NullInt64, error) {
	if ref == nil {
		return sql.NullInt64{}, nil
	}
	var id int64
	err := tx.queryRow(ctx, `SELECT v.id FROM versions v JOIN images i ON i.id = v.image_id WHERE i.name = ? AND v.number = ?`,
		ref.Image, ref.Number).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return sql.NullInt64{}, kiln.FieldErrorf(kiln.ENOTFOUND, field, "%s version %s does not exist; see `kiln version list %s`", field, ref, ref.Image)
	}
	if err != nil {
		return sql.NullInt64{}, fmt.Errorf("find %s version %s: %w", field, ref, err)
	}
	return sql.NullInt64{Int64: id, Valid: true}, nil
}

func copyProvenance(p kiln.Provenance) kiln.Provenance {
	c := p
	if p.Parent != nil {
		r := *p.Parent
		c.Parent = &r
	}
	if p.Base != nil {
		r := *p.Base
		c.Base = &r
	}
	if p.Artifact != nil {
		a := *p.Artifact
		a.Layers = slices.Clone(p.Artifact.Layers)
		c.Artifact = &a
	}
	c.Sources = slices.Clone(p.Sources)
	c.Packages = slices.Clone(p.Packages)
	c.Artifacts = slices.Clone(p.Artifacts)
	slices.SortStableFunc(c.Artifacts, compareArtifacts)
	if c.Sources == nil {
		c.Sources = []kiln.Source{}
	}
	if c.Packages == nil {
		c.Packages = []kiln.Package{}
	}
	c.StartedAt = truncTime(p.StartedAt)
	c.FinishedAt = truncTime(p.FinishedAt)
	return c
}

// compareArtifacts orders a version's further artifacts as the store
// returns them: by format name.
func compareArtifacts(a, b kiln.Artifact) int {
	return strings.Compare(string(a.Format), string(b.Format))
}

func truncTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// setSystemTags adds Name, Version and Release_Status, derived from the
// version itself.
func setSystemTags(v *kiln.Version) {
	if v.Tags == nil {
		v.Tags = kiln.Tags{}
	}
	v.Tags[kiln.TagName] = v.Image
	v.Tags[kiln.TagVersion] = strconv.Itoa(v.Number)
	v.Tags[kiln.TagReleaseStatus] = string(v.Status)
}

// versionSelect reads a version row with its provenance; scanVersion reads
// what it selects.
const versionSelect = `SELECT v.id, i.name, v.number, v.semver, v.status, v.created_at, v.updated_at,
	p.method, pi.name, pv.number, bi.name, bv.number,
	p.artifact_ref, p.artifact_digest, p.artifact_size, p.built_by, p.recorded_by, p.started_at, p.finished_at,
	p.source_date_epoch, p.source_date_epoch_from`

const versionFrom = ` FROM versions v` + versionJoins

const versionJoins = `
	JOIN images i ON i.id = v.image_id
	LEFT JOIN provenance p ON p.version_id = v.id
	LEFT JOIN versions pv ON pv.id = p.parent_version_id
	LEFT JOIN images pi ON pi.id = pv.image_id
	LEFT JOIN versions bv ON bv.id = p.base_version_id
	LEFT JOIN images bi ON bi.id = bv.image_id`

func scanVersion(row interface{ Scan(...any) error }, extra ...any) (*kiln.Version, error) {
	v := &kiln.Version{}
	var status string
	var method, parentImage, baseImage, artRef, artDigest, builtBy, recordedBy sql.NullString
	var parentNum, baseNum, artSize, epoch sql.NullInt64
	var epochFrom sql.NullString
	p := &v.Provenance
	dest := []any{&v.ID, &v.Image, &v.Number, &v.SemVer, &status, dbTime{&v.CreatedAt}, dbTime{&v.UpdatedAt},
		&method, &parentImage, &parentNum, &baseImage, &baseNum,
		&artRef, &artDigest, &artSize, &builtBy, &recordedBy, dbTime{&p.StartedAt}, dbTime{&p.FinishedAt},
		&epoch, &epochFrom}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	v.Status = kiln.Status(status)
	v.Name = v.Ref().String()
	p.Method = kiln.Method(method.String)
	p.BuiltBy, p.RecordedBy = builtBy.String, recordedBy.String
	p.SourceDateEpoch, p.SourceDateEpochFrom = epoch.Int64, epochFrom.String
	if parentImage.Valid {
		p.Parent = &kiln.VersionRef{Image: parentImage.String, Number: int(parentNum.Int64)}
	}
	if baseImage.Valid {
		p.Base = &kiln.VersionRef{Image: baseImage.String, Number: int(baseNum.Int64)}
	}
	if artRef.Valid {
		p.Artifact = &kiln.Artifact{Ref: artRef.String, Digest: artDigest.String, Size: artSize.Int64}
	}
	p.Sources = []kiln.Source{}
	p.Packages = []kiln.Package{}
	v.Tags = kiln.Tags{}
	return v, nil
}

// FindVersion returns one version with its full provenance, packages
// included. ENOTFOUND names the unknown image or version.
func (db *DB) FindVersion(ctx context.Context, ref kiln.VersionRef) (*kiln.Version, error) {
	var v *kiln.Version
	err := db.read(ctx, func(tx *tx) error {
		var err error
		if v, err = findVersion(ctx, tx, ref); err != nil {
			return err
		}
		return loadDetails(ctx, tx, []*kiln.Version{v}, true)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// findVersion reads a version row and its provenance, without tags,
// sources and packages.
func findVersion(ctx context.Context, tx *tx, ref kiln.VersionRef) (*kiln.Version, error) {
	v, err := scanVersion(tx.queryRow(ctx, versionSelect+versionFrom+` WHERE i.name = ? AND v.number = ?`, ref.Image, ref.Number))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, versionNotFound(ctx, tx, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("find version %s: %w", ref, err)
	}
	return v, nil
}

// versionNotFound says whether the image or only the version is missing,
// and which numbers exist.
func versionNotFound(ctx context.Context, tx *tx, ref kiln.VersionRef) error {
	img, err := findImage(ctx, tx, ref.Image)
	if err != nil {
		return err
	}
	if img.LatestNumber == 0 {
		return kiln.Errorf(kiln.ENOTFOUND, "version %s does not exist: image %s has no versions yet", ref, ref.Image)
	}
	return kiln.Errorf(kiln.ENOTFOUND, "version %s does not exist: %s has versions 1 to %d; see `kiln version list %s`",
		ref, ref.Image, img.LatestNumber, ref.Image)
}

// versionID returns the row id of ref, or ENOTFOUND.
func versionID(ctx context.Context, tx *tx, ref kiln.VersionRef) (int64, error) {
	var id int64
	err := tx.queryRow(ctx, `SELECT v.id FROM versions v JOIN images i ON i.id = v.image_id WHERE i.name = ? AND v.number = ?`,
		ref.Image, ref.Number).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, versionNotFound(ctx, tx, ref)
	}
	if err != nil {
		return 0, fmt.Errorf("find version %s: %w", ref, err)
	}
	return id, nil
}

// detailBatch is how many version ids one IN (…) list carries.
const detailBatch = 500

// loadDetails fills tags (system tags included) and sources of vs, and
// packages when withPackages is set.
func loadDetails(ctx context.Context, tx *tx, vs []*kiln.Version, withPackages bool) error {
	byID := make(map[int64]*kiln.Version, len(vs))
	for _, v := range vs {
		byID[v.ID] = v
	}
	batchSize := detailBatch
	if tx.db.dialect == dialectPostgres {
		// One array parameter: PostgreSQL plans "= ANY($1)" once, where
		// long IN lists cost more to plan than to run.
		batchSize = len(vs)
	}
	for start := 0; start < len(vs); start += batchSize {
		batch := vs[start:min(start+batchSize, len(vs))]
		in, ids := tx.db.idsIn(batch)
		if err := eachRow(ctx, tx, `SELECT version_id, key, value FROM version_tags WHERE version_id `+in, ids,
			func(rows *sql.Rows) error {
				var id int64
				var k, val string
				if err := rows.Scan(&id, &k, &val); err != nil {
					return err
				}
				byID[id].Tags[k] = val
				return nil
			}); err != nil {
			return fmt.Errorf("load tags: %w", err)
		}
		if err := eachRow(ctx, tx, `SELECT version_id, kind, ref, digest FROM version_sources WHERE version_id `+in+` ORDER BY version_id, position`, ids,
			func(rows *sql.Rows) error {
				var id int64
				var s kiln.Source
				var kind string
				if err := rows.Scan(&id, &kind, &s.Ref, &s.Digest); err != nil {
					return err
				}
				s.Kind = kiln.SourceKind(kind)
				byID[id].Provenance.Sources = append(byID[id].Provenance.Sources, s)
				return nil
			}); err != nil {
			return fmt.Errorf("load sources: %w", err)
		}
		if err := eachRow(ctx, tx, `SELECT version_id, format, ref, digest, size FROM version_artifacts WHERE version_id `+in+` ORDER BY version_id, format`, ids,
			func(rows *sql.Rows) error {
				var id int64
				var a kiln.Artifact
				var format string
				if err := rows.Scan(&id, &format, &a.Ref, &a.Digest, &a.Size); err != nil {
					return err
				}
				a.Format = kiln.ArtifactFormat(format)
				byID[id].Provenance.Artifacts = append(byID[id].Provenance.Artifacts, a)
				return nil
			}); err != nil {
			return fmt.Errorf("load artifacts: %w", err)
		}
		// Layers always: launching, verifying and pruning need them
		// wherever the version came from.
		if err := eachRow(ctx, tx, `SELECT version_id, digest, diff_id, size, media_type FROM artifact_layers WHERE version_id `+in+` ORDER BY version_id, position`, ids,
			func(rows *sql.Rows) error {
				var id int64
				var l kiln.Layer
				if err := rows.Scan(&id, &l.Digest, &l.DiffID, &l.Size, &l.MediaType); err != nil {
					return err
				}
				if a := byID[id].Provenance.Artifact; a != nil {
					a.Layers = append(a.Layers, l)
				}
				return nil
			}); err != nil {
			return fmt.Errorf("load artifact layers: %w", err)
		}
		if withPackages {
			if err := eachRow(ctx, tx, `SELECT version_id, name, version, architecture, source, source_version FROM version_packages WHERE version_id `+in+` ORDER BY version_id, name, architecture`, ids,
				func(rows *sql.Rows) error {
					var id int64
					var pk kiln.Package
					if err := rows.Scan(&id, &pk.Name, &pk.Version, &pk.Architecture, &pk.Source, &pk.SourceVersion); err != nil {
						return err
					}
					byID[id].Provenance.Packages = append(byID[id].Provenance.Packages, pk)
					return nil
				}); err != nil {
				return fmt.Errorf("load packages: %w", err)
			}
		}
	}
	for _, v := range vs {
		setSystemTags(v)
	}
	return loadRevocations(ctx, tx, vs)
}

// idsIn returns "IN (?, ?, …)" (SQLite) or "= ANY(?)" (PostgreSQL) and the
// arguments that select the rows of vs.
func (db *DB) idsIn(vs []*kiln.Version) (string, []any) {
	if db.dialect == dialectPostgres {
		ids := make([]int64, len(vs))
		for i, v := range vs {
			ids[i] = v.ID
		}
		return "= ANY(?)", []any{ids}
	}
	ids := make([]any, len(vs))
	for i, v := range vs {
		ids[i] = v.ID
	}
	return "IN (" + placeholders(len(ids)) + ")", ids
}

func eachRow(ctx context.Context, tx *tx, q string, args []any, fn func(*sql.Rows) error) error {
	rows, err := tx.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// ListVersions returns matching versions newest first and the number of
// all matches. Listed versions carry tags, sources and the rest of their
// provenance but not their package lists (FindVersion has those), so a
// listing of thousands of versions stays small.
func (db *DB) ListVersions(ctx context.Context, f kiln.VersionFilter) ([]*kiln.Version, int, error) {
	where, args, err := versionWhere(f)
	if err != nil {
		return nil, 0, err
	}
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return nil, 0, err
	}
	var vs []*kiln.Version
	total := 0
	err = db.read(ctx, func(tx *tx) error {
		vs, total = nil, 0
		if f.Image != "" {
			if _, err := findImage(ctx, tx, f.Image); err != nil {
				return err
			}
		}
		// The page's ids and the total come first, from versions and
		// images alone; only the page's rows are then joined with their
		// provenance.
		page, qargs := db.paged(`SELECT v.id AS page_id, COUNT(*) OVER () AS total FROM versions v JOIN images i ON i.id = v.image_id`+
			where+` ORDER BY v.id DESC`, args, f.Limit, f.Offset)
		q := `WITH page AS (` + page + `) ` + versionSelect + `, page.total FROM page JOIN versions v ON v.id = page.page_id` +
			versionJoins + ` ORDER BY v.id DESC`
		if err := eachRow(ctx, tx, q, qargs, func(rows *sql.Rows) error {
			v, err := scanVersion(rows, &total)
			if err != nil {
				return err
			}
			vs = append(vs, v)
			return nil
		}); err != nil {
			return fmt.Errorf("list versions: %w", err)
		}
		if pastEnd(len(vs), f.Offset) {
			if err := tx.queryRow(ctx, `SELECT COUNT(*)`+versionFrom+where, args...).Scan(&total); err != nil {
				return fmt.Errorf("count versions: %w", err)
			}
		}
		return loadDetails(ctx, tx, vs, false)
	})
	if err != nil {
		return nil, 0, err
	}
	if vs == nil {
		vs = []*kiln.Version{}
	}
	return vs, total, nil
}

// versionWhere builds the WHERE clause of a filter. System tags filter on
// the version's own columns; other tags on version_tags.
func versionWhere(f kiln.VersionFilter) (string, []any, error) {
	var conds []string
	var args []any
	if f.Image != "" {
		conds = append(conds, "i.name = ?")
		args = append(args, f.Image)
	}
	if len(f.Status) > 0 {
		for _, s := range f.Status {
			if !s.Valid() {
				return "", nil, kiln.FieldErrorf(kiln.EINVALID, "status", "unknown status %q; use one of candidate, tested, ready, failed, deprecated, revoked", s)
			}
			args = append(args, string(s))
		}
		conds = append(conds, "v.status IN ("+placeholders(len(f.Status))+")")
	}
	if f.MinStatus != "" {
		if f.MinStatus.Rank() == 0 {
			return "", nil, kiln.FieldErrorf(kiln.EINVALID, "min-status", "minimum status %q is not on the pipeline's main line; use candidate, tested or ready (or filter by status)", f.MinStatus)
		}
		ss := statusesAtLeast(f.MinStatus)
		conds = append(conds, "v.status IN ("+placeholders(len(ss))+")")
		args = append(args, ss...)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Tags)) {
		val := f.Tags[k]
		switch k {
		case kiln.TagName:
			conds = append(conds, "i.name = ?")
			args = append(args, val)
		case kiln.TagVersion:
			n, err := strconv.Atoi(val)
			if err != nil {
				return "", nil, kiln.FieldErrorf(kiln.EINVALID, "tags", "tag Version=%q: the Version tag is a version number, e.g. Version=3", val)
			}
			conds = append(conds, "v.number = ?")
			args = append(args, n)
		case kiln.TagReleaseStatus:
			conds = append(conds, "v.status = ?")
			args = append(args, strings.ToLower(val))
		default:
			conds = append(conds, "EXISTS (SELECT 1 FROM version_tags t WHERE t.version_id = v.id AND t.key = ? AND t.value = ?)")
			args = append(args, k, val)
		}
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args, nil
}

// statusesAtLeast lists the statuses ranking at least min, as query
// arguments.
func statusesAtLeast(min kiln.Status) []any {
	var ss []any
	for _, s := range kiln.Statuses {
		if s.Rank() >= min.Rank() && s.Rank() > 0 {
			ss = append(ss, string(s))
		}
	}
	return ss
}

// LatestVersion returns the image's highest-numbered version whose status
// ranks at least min (any status but revoked when min is empty). ENOTFOUND
// when the image does not exist or has no such version.
func (db *DB) LatestVersion(ctx context.Context, image string, min kiln.Status) (*kiln.Version, error) {
	if min != "" && min.Rank() == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "min-status", "minimum status %q is not on the pipeline's main line; use candidate, tested or ready", min)
	}
	var v *kiln.Version
	err := db.read(ctx, func(tx *tx) error {
		img, err := findImage(ctx, tx, image)
		if err != nil {
			return err
		}
		// A revoked version is never the latest, whatever min says.
		q := versionSelect + versionFrom + ` WHERE v.image_id = ? AND v.status <> 'revoked'`
		args := []any{img.ID}
		if min != "" {
			ss := statusesAtLeast(min)
			q += ` AND v.status IN (` + placeholders(len(ss)) + `)`
			args = append(args, ss...)
		}
		v, err = scanVersion(tx.queryRow(ctx, q+` ORDER BY v.number DESC LIMIT 1`, args...))
		if errors.Is(err, sql.ErrNoRows) {
			if min == "" && img.LatestNumber == 0 {
				return kiln.Errorf(kiln.ENOTFOUND, "image %s has no versions yet", image)
			}
			if min == "" {
				return kiln.Errorf(kiln.ENOTFOUND, "every version of %s is revoked; see `kiln version list %s --status revoked`", image, image)
			}
			return kiln.Errorf(kiln.ENOTFOUND, "image %s has no version with status %s or better; see `kiln version list %s`", image, min, image)
		}
		if err != nil {
			return fmt.Errorf("latest version of %s: %w", image, err)
		}
		return loadDetails(ctx, tx, []*kiln.Version{v}, true)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// SealVersionsWith makes every version recorded through db sealed by seal
// (kiln signs provenance this way), unless the caller gives its own Seal.
func (db *DB) SealVersionsWith(seal func(*kiln.Version) (*kiln.Attachment, error)) {
	db.seal = seal
}

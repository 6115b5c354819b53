package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln"
)

// A server kiln did not build (a Packer AMI) has no /etc/kiln-release; its
// agent names the artifact it was made from instead (Checkin.Artifact),
// and CheckIn looks the version up in external_artifacts (migration 0030)
// before its write transaction, once per distinct artifact of the batch.
// Check-ins that name their version, every kiln-built server's, skip this.

// resolveArtifacts returns, for each check-in of cs, either the check-in
// to record (cs[i] itself, or for one that names its version by artifact
// a copy whose release names the version) or why it is refused: no
// imported version has that artifact (ENOTFOUND), or several do
// (ECONFLICT).
func (db *DB) resolveArtifacts(ctx context.Context, cs []*kiln.Checkin) ([]*kiln.Checkin, []error, error) {
	var names []string
	for _, c := range cs {
		if c.ByArtifact() && !slices.Contains(names, c.Artifact) {
			names = append(names, c.Artifact)
		}
	}
	found := make(map[string][]kiln.VersionRef, len(names))
	err := db.read(ctx, func(tx *tx) error {
		q := `SELECT a.artifact, i.name, v.number FROM external_artifacts a
			JOIN versions v ON v.id = a.version_id JOIN images i ON i.id = v.image_id WHERE a.artifact `
		var args []any
		if tx.db.dialect == dialectPostgres {
			q += `= ANY(?)`
			args = []any{names}
		} else {
			q += `IN (` + placeholders(len(names)) + `)`
			for _, n := range names {
				args = append(args, n)
			}
		}
		return eachRow(ctx, tx, q+` ORDER BY i.name, v.number`, args, func(rows *sql.Rows) error {
			var name string
			var ref kiln.VersionRef
			if err := rows.Scan(&name, &ref.Image, &ref.Number); err != nil {
				return err
			}
			found[name] = append(found[name], ref)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("check in: find versions by artifact: %w", err)
	}
	out := make([]*kiln.Checkin, len(cs))
	refused := make([]error, len(cs))
	for i, c := range cs {
		if !c.ByArtifact() {
			out[i] = c
			continue
		}
		refs := found[c.Artifact]
		switch {
		case len(refs) == 0:
			refused[i] = kiln.FieldErrorf(kiln.ENOTFOUND, "artifact", "no imported version has artifact %s; import the build first (`kiln version import packer-manifest packer-manifest.json`), then check in again", c.Artifact)
		case len(refs) > 1:
			shown := make([]string, 0, 5)
			for _, r := range refs[:min(len(refs), 5)] {
				shown = append(shown, r.String())
			}
			if len(refs) > len(shown) {
				shown = append(shown, "…")
			}
			refused[i] = kiln.FieldErrorf(kiln.ECONFLICT, "artifact", "artifact %s is the artifact of %d versions (%s), so it does not say which one this server runs; "+
				"check in by a unique artifact id (an AMI id is; qemu's VM and docker's Container are not), or write image= and version= to /etc/kiln-release after the import",
				c.Artifact, len(refs), strings.Join(shown, ", "))
		default:
			cp := *c
			cp.Release = make(map[string]string, len(c.Release)+2)
			maps.Copy(cp.Release, c.Release)
			cp.Release["image"], cp.Release["version"] = refs[0].Image, strconv.Itoa(refs[0].Number)
			out[i] = &cp
		}
	}
	return out, refused, nil
}

// checkInByArtifact records a batch of which some check-ins name their
// version by artifact: those resolved are recorded with the others, those
// refused are answered with their refusal alone.
func (db *DB) checkInByArtifact(ctx context.Context, cs []*kiln.Checkin) ([]*kiln.CheckinResult, error) {
	resolved, refused, err := db.resolveArtifacts(ctx, cs)
	if err != nil {
		return nil, err
	}
	out := make([]*kiln.CheckinResult, len(cs))
	var todo []*kiln.Checkin
	var at []int
	for i, c := range resolved {
		if refused[i] != nil {
			out[i] = &kiln.CheckinResult{Refused: refused[i]}
			continue
		}
		todo, at = append(todo, c), append(at, i)
	}
	if len(todo) == 0 {
		return out, nil
	}
	res, err := db.CheckIn(ctx, todo)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		out[at[j]] = r
	}
	return out, nil
}

package store

import (
	"context"
	"fmt"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.PackageRecorder.
var _ kiln.PackageRecorder = (*DB)(nil)

// SetPackages gives an external version without a package manifest its
// manifest, in one transaction with its history entry and audit record.
// A version kiln built is refused (EIMMUTABLE: its manifest is part of
// its signed provenance), as is an external version that has one.
func (db *DB) SetPackages(ctx context.Context, ref kiln.VersionRef, pkgs []kiln.Package) (*kiln.Version, error) {
	if len(pkgs) == 0 {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "packages", "no packages given; the manifest lists the installed packages (dpkg-query -W output)")
	}
	if err := kiln.ValidatePackages("packages", pkgs); err != nil {
		return nil, err
	}
	var v *kiln.Version
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if v, err = findVersion(ctx, tx, ref); err != nil {
			return err
		}
		if v.Provenance.Method != kiln.MethodExternal {
			return kiln.FieldErrorf(kiln.EIMMUTABLE, "packages", "%s was built by kiln (method %s): its package manifest was read at build time, is part of its signed provenance and never changes; only a version of method external (imported) may be given one",
				ref, v.Provenance.Method)
		}
		if tx.db.dialect == dialectPostgres {
			// Two concurrent calls for one version: the second waits and
			// then finds the first's packages.
			if _, err := tx.exec(ctx, `SELECT id FROM versions WHERE id = ? FOR UPDATE`, v.ID); err != nil {
				return fmt.Errorf("lock %s: %w", ref, err)
			}
		}
		var n int
		if err := tx.queryRow(ctx, `SELECT count(*) FROM version_packages WHERE version_id = ?`, v.ID).Scan(&n); err != nil {
			return fmt.Errorf("count packages of %s: %w", ref, err)
		}
		if n > 0 {
			return kiln.FieldErrorf(kiln.EIMMUTABLE, "packages", "%s has a package manifest already (%d packages) and it never changes; import the rebuilt image as a new version and give that one its manifest", ref, n)
		}
		if err := insertPackages(ctx, tx, v.ID, pkgs); err != nil {
			return fmt.Errorf("insert packages of %s: %w", ref, err)
		}
		what := fmt.Sprintf("%d packages", len(pkgs))
		if err := insertHistory(ctx, tx, v.ID, "packages", "", what, "recorded for an external version"); err != nil {
			return err
		}
		if err := audit(ctx, tx, "version.packages", ref.String(), what); err != nil {
			return err
		}
		return loadDetails(ctx, tx, []*kiln.Version{v}, true)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

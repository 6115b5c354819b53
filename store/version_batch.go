package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.VersionImporter.
var _ kiln.VersionImporter = (*DB)(nil)

// maxBatch bounds one CreateVersions call.
const maxBatch = 1000

// CreateVersions records nvs in order, in one transaction: every version
// or none. Each is validated first; an error names the position
// ("versions[2].artifact.ref").
func (db *DB) CreateVersions(ctx context.Context, nvs []*kiln.NewVersion) ([]*kiln.Version, error) {
	if len(nvs) == 0 {
		return nil, kiln.Errorf(kiln.EINVALID, "no versions given")
	}
	if len(nvs) > maxBatch {
		return nil, kiln.Errorf(kiln.EINVALID, "%d versions given; the limit is %d at once", len(nvs), maxBatch)
	}
	batch := make([]*kiln.NewVersion, len(nvs))
	for i, nv := range nvs {
		if nv == nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("versions[%d]", i), "no version given")
		}
		if err := nv.Validate(); err != nil {
			return nil, atIndex(i, err)
		}
		if err := checkDuplicates(&nv.Provenance); err != nil {
			return nil, atIndex(i, err)
		}
		cp := *nv
		if cp.Seal == nil {
			cp.Seal = db.seal
		}
		batch[i] = &cp
	}
	var out []*kiln.Version
	err := db.write(ctx, func(tx *tx) error {
		out = make([]*kiln.Version, 0, len(batch))
		for i, nv := range batch {
			v, err := createVersion(ctx, tx, nv)
			if err != nil {
				return atIndex(i, err)
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// atIndex prefixes a field error's field with "versions[i]."; other errors
// are wrapped with the position.
func atIndex(i int, err error) error {
	var fe *kiln.Error
	if errors.As(err, &fe) && fe.Field != "" {
		c := *fe
		c.Field = fmt.Sprintf("versions[%d].%s", i, fe.Field)
		return &c
	}
	return fmt.Errorf("versions[%d]: %w", i, err)
}

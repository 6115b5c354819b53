package store

import (
	"slices"

	"github.com/kiln-project/kiln"
)

// Listings page with a filter's Limit (0: all) and Offset, and return the
// number of all matches beside the page: a window COUNT(*) OVER () in the
// page's query, or, for a page past the end (no row to carry the window
// count), a COUNT(*) of its own.

// checkPage refuses a negative limit or offset.
func checkPage(limit, offset int) error {
	if limit < 0 || offset < 0 {
		return kiln.FieldErrorf(kiln.EINVALID, "limit", "limit and offset must not be negative")
	}
	return nil
}

// paged appends the page's LIMIT and OFFSET to query q and their values to
// a copy of its args.
func (db *DB) paged(q string, args []any, limit, offset int) (string, []any) {
	switch {
	case limit > 0:
		return q + ` LIMIT ? OFFSET ?`, append(slices.Clip(args), limit, offset)
	case offset > 0:
		// SQLite needs a LIMIT before OFFSET: -1 means none there, ALL
		// on PostgreSQL.
		return q + ` LIMIT ` + db.noLimit() + ` OFFSET ?`, append(slices.Clip(args), offset)
	}
	return q, args
}

// pastEnd reports whether a page that came back with n rows may lie past
// the end, so the total must be counted apart.
func pastEnd(n, offset int) bool { return n == 0 && offset > 0 }

func (db *DB) noLimit() string {
	if db.dialect == dialectPostgres {
		return "ALL"
	}
	return "-1"
}

package kiln

import (
	"context"
	"path/filepath"
	"strings"
	"time"
)

// Estate is an estate directory an admin registered on the server (`kiln
// estate add NAME DIR`). Runs asked for through the API start only from
// registered estates: the estate's definition decides what is built (as
// root, in its scripts) and where it is delivered, so choosing the
// directory is an admin's decision, not the caller's.
type Estate struct {
	Name      string    `json:"name"`
	Dir       string    `json:"dir"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by,omitempty"`
}

// Validate checks an estate before it is registered.
func (e *Estate) Validate() error {
	if e.Name == "" || len(e.Name) > 63 || strings.Trim(e.Name, "abcdefghijklmnopqrstuvwxyz0123456789-_.") != "" {
		return FieldErrorf(EINVALID, "name", "estate name %q is not valid; use 1–63 lowercase letters, digits, '-', '_' or '.', e.g. web", e.Name)
	}
	if !filepath.IsAbs(e.Dir) {
		return FieldErrorf(EINVALID, "dir", "estate directory %q is not an absolute path; give it as the server sees it, e.g. /srv/estates/web", e.Dir)
	}
	if filepath.Clean(e.Dir) != e.Dir {
		return FieldErrorf(EINVALID, "dir", "estate directory %q is not in clean form; write %s", e.Dir, filepath.Clean(e.Dir))
	}
	return nil
}

// EstateStore keeps the registered estates; adding and removing one is
// audited (estate.add, estate.remove). Errors: ECONFLICT for a name or
// directory registered already, ENOTFOUND for an unknown name.
type EstateStore interface {
	AddEstate(ctx context.Context, e *Estate) error
	ListEstates(ctx context.Context) ([]*Estate, error)
	// FindEstate finds an estate by name.
	FindEstate(ctx context.Context, name string) (*Estate, error)
	RemoveEstate(ctx context.Context, name string) error
}

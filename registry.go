package kiln

import (
	"context"
	"time"
)

// Registry is the record of image lines, versions, their provenance, tags and
// history. Every mutating method runs in one transaction: it either records
// everything (including the history entry) or nothing.
//
// Errors: ENOTFOUND for an unknown image or version, ECONFLICT for a
// duplicate or a forbidden status transition, EIMMUTABLE for an attempt to
// change provenance or an attachment, EINVALID for bad input, EUNAVAILABLE
// when the database cannot be reached or is locked.
type Registry interface {
	CreateImage(ctx context.Context, img *Image) error
	FindImage(ctx context.Context, name string) (*Image, error)
	ListImages(ctx context.Context) ([]*Image, error)

	// CreateVersion assigns the image's next number in the same transaction
	// that records the version, with status candidate.
	CreateVersion(ctx context.Context, nv *NewVersion) (*Version, error)
	FindVersion(ctx context.Context, ref VersionRef) (*Version, error)
	// ListVersions returns matching versions newest first, and the total
	// number of matches ignoring Limit and Offset.
	ListVersions(ctx context.Context, f VersionFilter) ([]*Version, int, error)
	// LatestVersion returns the newest version of image whose status ranks
	// at least min (empty min: any status).
	LatestVersion(ctx context.Context, image string, min Status) (*Version, error)

	SetStatus(ctx context.Context, ref VersionRef, to Status, reason string) (*Version, error)
	UpdateTags(ctx context.Context, ref VersionRef, upd TagUpdate) (*Version, error)
	History(ctx context.Context, ref VersionRef) ([]*HistoryEntry, error)

	// Lineage lists, for every image line built on another, the latest
	// version's base and whether a newer ready base exists.
	Lineage(ctx context.Context) ([]*Lineage, error)

	// AddAttachment stores a write-once document with a version.
	AddAttachment(ctx context.Context, ref VersionRef, a *Attachment) error
	Attachment(ctx context.Context, ref VersionRef, name string) (*Attachment, error)
	ListAttachments(ctx context.Context, ref VersionRef) ([]*Attachment, error)
}

// Clock returns the current time; stores take one so tests control time.
type Clock func() time.Time

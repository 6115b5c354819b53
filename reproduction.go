package kiln

import (
	"context"
	"time"
)

// Reproduction is the record of one `kiln version rebuild IMAGE-N --check`:
// the version rebuilt from its recorded provenance (definition, files,
// SOURCE_DATE_EPOCH, package versions) and whether the artifact came out
// bit for bit the same.
type Reproduction struct {
	Version VersionRef `json:"version"`
	// Identical is set when the rebuilt artifact has the recorded digest.
	Identical bool `json:"identical"`
	// Digest is the rebuilt artifact's digest.
	Digest string `json:"digest"`
	// Summary says what differs (empty when identical): counts and the
	// first differing files, each with the step that wrote it.
	Summary string    `json:"summary,omitempty"`
	Actor   string    `json:"actor"`
	At      time.Time `json:"at"`
	// Elapsed is how long the rebuild took.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Reproductions keeps the rebuild checks of versions. The record is not
// part of the signed provenance (which never changes); it says who checked
// and when.
//
// Errors: ENOTFOUND for an unknown version.
type Reproductions interface {
	RecordReproduction(ctx context.Context, r *Reproduction) error
	// ListReproductions returns ref's checks, newest first.
	ListReproductions(ctx context.Context, ref VersionRef) ([]*Reproduction, error)
}

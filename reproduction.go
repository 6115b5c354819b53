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
	Summary string `json:"summary,omitempty"`
	// DifferingFiles is how many files differ; Files are the first
	// MaxReproductionFiles of them, sorted by path. Checks recorded before
	// kiln kept the files have only the Summary.
	DifferingFiles int             `json:"differing_files"`
	Files          []DifferingFile `json:"files,omitempty"`
	Actor          string          `json:"actor"`
	At             time.Time       `json:"at"`
	// Elapsed is how long the rebuild took.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Attestation names the attachment that keeps this check as a signed
	// in-toto statement about the version's artifact (AttestationName),
	// when the check was signed (Seal); set by RecordReproduction and
	// ListReproductions.
	Attestation string `json:"attestation,omitempty"`
	// Seal, when set, signs the check as it is recorded (Actor and At
	// set): the registry keeps the returned attachment in the same
	// transaction as the record, as NewVersion.Seal does for provenance.
	Seal func(r *Reproduction) (*Attachment, error) `json:"-"`
}

// AttestationName is the attachment a signed record of the check is kept
// under: "reproduction.20261207T124500.123456Z.dsse.json", the check's
// time in UTC to the microsecond (the precision the registry keeps), so
// every check of a version has its own write-once attachment.
func (r *Reproduction) AttestationName() string {
	return "reproduction." + r.At.UTC().Format("20060102T150405.000000Z") + ".dsse.json"
}

// MaxReproductionFiles bounds the differing files a reproduction record
// keeps.
const MaxReproductionFiles = 100

// DifferingFile is a path that differs between a version's recorded
// artifact and its rebuild.
type DifferingFile struct {
	Path string `json:"path"`
	// What differs: "only in recorded", "only in rebuilt", "content",
	// "size", "type", "mode", "owner", "mtime", "link target", "xattrs".
	What []string `json:"what"`
	// Step is the step whose layer holds the path in the rebuild (the
	// step that wrote it), with its file:line where it has one.
	Step string `json:"step,omitempty"`
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

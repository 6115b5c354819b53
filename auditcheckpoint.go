package kiln

import (
	"context"
	"time"
)

// AuditAnchor is one link of the audit log's chain known from outside the
// database: entry Seq has hash Hash. `kiln audit head` prints the current
// one for a person to write down; a signed checkpoint carries one.
type AuditAnchor struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// AuditCheckpoint is an anchor signed with kiln's provenance signing key,
// which lives outside the database: someone who can write to the database
// can delete audit entries and re-hash the rest into an intact-looking
// chain, but cannot sign a checkpoint that vouches for the new hashes.
type AuditCheckpoint struct {
	AuditAnchor
	Time  time.Time `json:"time"`
	KeyID string    `json:"key_id"`
	// Envelope is the DSSE envelope (JSON) over the anchor and time.
	Envelope []byte `json:"envelope"`
}

// AuditReport is the outcome of verifying the audit log against its chain,
// its signed checkpoints and the anchors a user gave.
type AuditReport struct {
	AuditCheck
	// Checkpoints counts the signed checkpoints whose signature verified
	// and whose entry the log still holds with the signed hash.
	Checkpoints int `json:"checkpoints"`
	// LastCheckpoint is the newest checkpoint that verified, if any.
	LastCheckpoint *AuditCheckpoint `json:"last_checkpoint,omitempty"`
	// Anchors counts the anchors the user gave (`--expect SEQ:HASH`).
	Anchors int `json:"anchors"`
	// Warnings are signs worth a look that do not prove tampering, such
	// as no checkpoint for a long time.
	Warnings []string `json:"warnings,omitempty"`
}

// AuditCheckpoints keeps signed checkpoints of the audit log beside it.
// Like the log, the checkpoint table refuses UPDATE and DELETE.
type AuditCheckpoints interface {
	// AuditHead returns the newest entry's anchor; Seq 0 for an empty log.
	AuditHead(ctx context.Context) (AuditAnchor, error)
	// AddAuditCheckpoint keeps cp. ECONFLICT when the log's entry cp.Seq
	// does not have hash cp.Hash (the checkpoint vouches for another log).
	AddAuditCheckpoint(ctx context.Context, cp *AuditCheckpoint) error
	// ListAuditCheckpoints returns every checkpoint, oldest first.
	ListAuditCheckpoints(ctx context.Context) ([]*AuditCheckpoint, error)
	// VerifyAuditAgainst walks the chain like AuditLog.VerifyAudit and
	// also reports each anchor whose entry is missing or has another hash.
	VerifyAuditAgainst(ctx context.Context, anchors []AuditAnchor) (*AuditCheck, error)
}

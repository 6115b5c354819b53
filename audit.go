package kiln

import (
	"context"
	"time"
)

// Audit results.
const (
	AuditOK     = "ok"     // the action was carried out
	AuditDenied = "denied" // authentication or authorisation refused it
)

// AuditEntry is one line of the append-only, hash-chained audit log.
type AuditEntry struct {
	// Seq numbers entries 1, 2, 3… without gaps, so a deleted entry shows.
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // "token:NAME", "local:USER", "anonymous"
	Action string    `json:"action"` // "version.status", "token.create", "api.denied"
	Target string    `json:"target"` // "appserver-3", "token ci", "POST /api/v1/images"
	Detail string    `json:"detail,omitempty"`
	Source string    `json:"source"` // client address, or "local"
	Result string    `json:"result"` // AuditOK, AuditDenied
	// PrevHash is the previous entry's Hash ("" for the first); Hash covers
	// this entry's fields and PrevHash (docs/security.md has the bytes).
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// AuditFilter selects audit entries; zero fields match everything.
type AuditFilter struct {
	Since  time.Time
	Actor  string
	Target string
	Limit  int
}

// AuditCheck is the outcome of verifying the chain.
type AuditCheck struct {
	Entries int64  `json:"entries"`
	Head    string `json:"head"` // hash of the last entry: record it elsewhere to detect truncation
	// Problems lists every entry that breaks the chain; empty when intact.
	Problems []string `json:"problems,omitempty"`
}

// AuditLog is the append-only record of who changed what. Stores append to
// it inside the transaction of each change; Append is for events with no
// change of their own (a denied request).
type AuditLog interface {
	AppendAudit(ctx context.Context, e *AuditEntry) error
	ListAudit(ctx context.Context, f AuditFilter) ([]*AuditEntry, error)
	VerifyAudit(ctx context.Context) (*AuditCheck, error)
}

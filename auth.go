package kiln

import (
	"context"
	"strings"
	"time"
)

// Role is what a token may do. Viewer, builder, operator and admin form a
// ladder (each may do what the ones below may); agent stands apart: it may
// only send instance check-ins, and no other role but admin may.
type Role string

// Roles; docs/security.md has the matrix of who may do what.
const (
	RoleViewer   Role = "viewer"   // reads everything
	RoleAgent    Role = "agent"    // sends instance check-ins, nothing else
	RoleBuilder  Role = "builder"  // records versions, uploads artifacts, runs builds and tests
	RoleOperator Role = "operator" // promotes, rolls out, revokes, deprecates, opens break-glass access
	RoleAdmin    Role = "admin"    // manages tokens and policies; may do everything
)

// Roles lists every role, least powerful first.
var Roles = []Role{RoleViewer, RoleAgent, RoleBuilder, RoleOperator, RoleAdmin}

// rank orders the ladder; agent is off it (0).
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleBuilder:
		return 2
	case RoleOperator:
		return 3
	case RoleAdmin:
		return 4
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r == RoleAgent || r.rank() > 0 }

// Allows reports whether a token with role r may call an operation that
// needs role need. Admin may do everything; agent only agent operations;
// otherwise r must be at least need on the ladder.
func (r Role) Allows(need Role) bool {
	switch {
	case r == RoleAdmin:
		return need.Valid()
	case need == RoleAgent || r == RoleAgent:
		return r == need
	}
	return r.rank() > 0 && need.rank() > 0 && r.rank() >= need.rank()
}

// ParseRole parses a role name, naming field in the error.
func ParseRole(field, s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", FieldErrorf(EINVALID, field, "unknown role %q; use one of viewer, agent, builder, operator, admin", s)
	}
	return r, nil
}

// Token is an API token as stored: its secret is shown once at creation and
// only a hash of it is kept.
type Token struct {
	ID        int64     `json:"-"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// RevokedAt is zero for a token in force.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Active reports whether t may be used at time now.
func (t *Token) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// NewToken is the input of TokenStore.CreateToken.
type NewToken struct {
	Name string
	Role Role
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt time.Time
}

// TokenStore keeps API tokens and dashboard sessions. Token and session
// changes are audited in the transaction that makes them.
//
// Errors: EINVALID for a bad name or role, ECONFLICT for a name in use,
// ENOTFOUND for an unknown name, EUNAUTH for a secret that is unknown,
// expired or revoked (the message never repeats the secret).
type TokenStore interface {
	// CreateToken records a token and returns it with its secret, which is
	// not stored and cannot be shown again.
	CreateToken(ctx context.Context, nt *NewToken) (*Token, string, error)
	ListTokens(ctx context.Context) ([]*Token, error)
	// RevokeToken ends a token and every session opened with it.
	RevokeToken(ctx context.Context, name string) (*Token, error)
	// Authenticate returns the active token whose secret this is.
	Authenticate(ctx context.Context, secret string) (*Token, error)

	// CreateSession opens a dashboard session for an active token and
	// returns the session's secret (for a cookie), valid until expires.
	CreateSession(ctx context.Context, token *Token, expires time.Time) (string, error)
	// AuthenticateSession returns the active token behind a session secret.
	AuthenticateSession(ctx context.Context, secret string) (*Token, error)
	// DeleteSession ends a session; an unknown secret is not an error.
	DeleteSession(ctx context.Context, secret string) error
}

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

type sourceKey struct{}

// WithSource returns a context carrying the client address an action came
// from; audit entries record it.
func WithSource(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, sourceKey{}, addr)
}

// SourceFrom returns the address carried by ctx, or "local".
func SourceFrom(ctx context.Context) string {
	if a, ok := ctx.Value(sourceKey{}).(string); ok && a != "" {
		return a
	}
	return "local"
}

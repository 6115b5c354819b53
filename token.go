package kiln

import (
	"context"
	"time"
)

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

package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB keeps tokens.
var _ kiln.TokenStore = (*DB)(nil)

// Secrets are 256 random bits, base32 (lowercase, unpadded), behind a
// prefix that secret scanners and people recognise: "kiln_" for API tokens,
// "kilns_" for dashboard sessions.
const (
	TokenPrefix   = "kiln_"
	sessionPrefix = "kilns_"
	secretBytes   = 32
)

var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// secretLen is the length of an encoded secret without its prefix.
var secretLen = secretEncoding.EncodedLen(secretBytes)

var tokenNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func newSecret(prefix string) (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return prefix + strings.ToLower(secretEncoding.EncodeToString(b)), nil
}

// secretHash is what the database keeps of a secret. A single SHA-256 is
// enough: the secrets are 256 random bits, so there is no dictionary to try
// and nothing for a slow hash to protect.
func secretHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// wellFormed reports whether secret looks like one kiln issued, so garbage
// is refused without a query.
func wellFormed(secret, prefix string) bool {
	s, ok := strings.CutPrefix(secret, prefix)
	if !ok || len(s) != secretLen {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

const tokenColumns = `id, name, role, created_at, created_by, expires_at, revoked_at`

func scanToken(row interface{ Scan(...any) error }, extra ...any) (*kiln.Token, error) {
	t := &kiln.Token{}
	var role string
	dest := append([]any{&t.ID, &t.Name, &role, dbTime{&t.CreatedAt}, &t.CreatedBy, dbTime{&t.ExpiresAt}, dbTime{&t.RevokedAt}}, extra...)
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	t.Role = kiln.Role(role)
	return t, nil
}

// CreateToken records a token and returns its secret, which only the
// caller ever sees. EINVALID for a bad name, role or expiry in the past;
// ECONFLICT when the name is taken (revoked tokens keep their names).
func (db *DB) CreateToken(ctx context.Context, nt *kiln.NewToken) (*kiln.Token, string, error) {
	if !tokenNameRE.MatchString(nt.Name) {
		return nil, "", kiln.FieldErrorf(kiln.EINVALID, "name", "token name %q must be 1-63 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit", nt.Name)
	}
	if !nt.Role.Valid() {
		return nil, "", kiln.FieldErrorf(kiln.EINVALID, "role", "unknown role %q; use one of viewer, agent, builder, operator, admin", nt.Role)
	}
	if !nt.ExpiresAt.IsZero() && !nt.ExpiresAt.After(db.now()) {
		return nil, "", kiln.FieldErrorf(kiln.EINVALID, "expires", "expiry %s is in the past; give a time in the future", nt.ExpiresAt.UTC().Format(time.RFC3339))
	}
	secret, err := newSecret(TokenPrefix)
	if err != nil {
		return nil, "", err
	}
	var t *kiln.Token
	err = db.write(ctx, func(tx *tx) error {
		t = &kiln.Token{Name: nt.Name, Role: nt.Role, CreatedAt: tx.now, CreatedBy: kiln.ActorFrom(ctx), ExpiresAt: truncTime(nt.ExpiresAt)}
		err := tx.queryRow(ctx, `INSERT INTO tokens (name, role, secret_hash, created_at, created_by, expires_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
			t.Name, string(t.Role), secretHash(secret), tx.timeArg(tx.now), t.CreatedBy, tx.timeArg(t.ExpiresAt)).Scan(&t.ID)
		if isUnique(err) {
			return kiln.FieldErrorf(kiln.ECONFLICT, "name", "a token named %s exists already (see `kiln token list`); choose another name", t.Name)
		}
		if err != nil {
			return fmt.Errorf("create token %s: %w", t.Name, err)
		}
		detail := "role " + string(t.Role)
		if !t.ExpiresAt.IsZero() {
			detail += ", expires " + t.ExpiresAt.Format(time.RFC3339)
		}
		return audit(ctx, tx, "token.create", "token "+t.Name, detail)
	})
	if err != nil {
		return nil, "", err
	}
	return t, secret, nil
}

// ListTokens returns every token, revoked and expired ones included, by
// name. Secrets are not stored, so none is returned.
func (db *DB) ListTokens(ctx context.Context) ([]*kiln.Token, error) {
	var ts []*kiln.Token
	err := db.read(ctx, func(tx *tx) error {
		ts = nil
		return eachRow(ctx, tx, `SELECT `+tokenColumns+` FROM tokens ORDER BY name`, nil, func(rows *sql.Rows) error {
			t, err := scanToken(rows)
			if err != nil {
				return fmt.Errorf("list tokens: %w", err)
			}
			ts = append(ts, t)
			return nil
		})
	})
	if ts == nil {
		ts = []*kiln.Token{}
	}
	return ts, err
}

// RevokeToken ends a token and its dashboard sessions at once. ENOTFOUND
// for an unknown name, ECONFLICT when it is revoked already.
func (db *DB) RevokeToken(ctx context.Context, name string) (*kiln.Token, error) {
	var t *kiln.Token
	err := db.write(ctx, func(tx *tx) error {
		var err error
		t, err = scanToken(tx.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return kiln.FieldErrorf(kiln.ENOTFOUND, "name", "there is no token named %s; see `kiln token list`", name)
		}
		if err != nil {
			return fmt.Errorf("find token %s: %w", name, err)
		}
		if !t.RevokedAt.IsZero() {
			return kiln.FieldErrorf(kiln.ECONFLICT, "name", "token %s was revoked already, at %s", name, t.RevokedAt.Format(time.RFC3339))
		}
		if _, err := tx.exec(ctx, `UPDATE tokens SET revoked_at = ? WHERE id = ?`, tx.timeArg(tx.now), t.ID); err != nil {
			return fmt.Errorf("revoke token %s: %w", name, err)
		}
		if _, err := tx.exec(ctx, `DELETE FROM sessions WHERE token_id = ?`, t.ID); err != nil {
			return fmt.Errorf("end sessions of token %s: %w", name, err)
		}
		t.RevokedAt = tx.now
		return audit(ctx, tx, "token.revoke", "token "+name, "role "+string(t.Role))
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

// errBadSecret is the answer for a secret that is not one kiln issued; it
// never repeats the secret.
func errBadSecret(what string) error {
	return kiln.Errorf(kiln.EUNAUTH, "the %s is not valid for this server; send `Authorization: Bearer kiln_…` with a token from `kiln token create`", what)
}

// Authenticate returns the token whose secret this is. The database finds
// the row by the secret's hash; the hash is then compared again in
// constant time, so the answer's timing does not depend on how much of a
// guess was right. EUNAUTH for an unknown, expired or revoked token.
func (db *DB) Authenticate(ctx context.Context, secret string) (*kiln.Token, error) {
	if !wellFormed(secret, TokenPrefix) {
		return nil, errBadSecret("bearer token")
	}
	want := secretHash(secret)
	var t *kiln.Token
	var stored string
	err := db.read(ctx, func(tx *tx) error {
		var err error
		t, err = scanToken(tx.queryRow(ctx, `SELECT `+tokenColumns+`, secret_hash FROM tokens WHERE secret_hash = ?`, want), &stored)
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errBadSecret("bearer token")
	}
	if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(want)) != 1 {
		return nil, errBadSecret("bearer token")
	}
	return t, usable(t, db.now())
}

// usable says why a token may not be used now, or nil.
func usable(t *kiln.Token, now time.Time) error {
	switch {
	case !t.RevokedAt.IsZero():
		return kiln.Errorf(kiln.EUNAUTH, "token %s was revoked at %s; ask an admin for a new one", t.Name, t.RevokedAt.Format(time.RFC3339))
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return kiln.Errorf(kiln.EUNAUTH, "token %s expired at %s; ask an admin for a new one", t.Name, t.ExpiresAt.Format(time.RFC3339))
	}
	return nil
}

// CreateSession opens a dashboard session for token, until expires (no
// later than the token's own expiry). The sign-in is audited.
func (db *DB) CreateSession(ctx context.Context, token *kiln.Token, expires time.Time) (string, error) {
	secret, err := newSecret(sessionPrefix)
	if err != nil {
		return "", err
	}
	err = db.write(ctx, func(tx *tx) error {
		t, err := scanToken(tx.queryRow(ctx, `SELECT `+tokenColumns+` FROM tokens WHERE id = ?`, token.ID))
		if errors.Is(err, sql.ErrNoRows) {
			return errBadSecret("token")
		}
		if err != nil {
			return fmt.Errorf("find token %s: %w", token.Name, err)
		}
		if err := usable(t, tx.now); err != nil {
			return err
		}
		if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(expires) {
			expires = t.ExpiresAt
		}
		// Ended sessions are of no use to anyone: every sign-in sweeps
		// them, so the table holds only live ones.
		if _, err := tx.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, tx.timeArg(tx.now)); err != nil {
			return fmt.Errorf("remove ended sessions: %w", err)
		}
		if _, err := tx.exec(ctx, `INSERT INTO sessions (secret_hash, token_id, created_at, expires_at) VALUES (?, ?, ?, ?)`,
			secretHash(secret), t.ID, tx.timeArg(tx.now), tx.timeArg(expires)); err != nil {
			return fmt.Errorf("create session for token %s: %w", t.Name, err)
		}
		return audit(ctx, tx, "session.create", "token "+t.Name, "until "+expires.UTC().Format(time.RFC3339))
	})
	if err != nil {
		return "", err
	}
	return secret, nil
}

// AuthenticateSession returns the token behind a session secret. EUNAUTH
// when the session is unknown or expired or its token no longer usable.
func (db *DB) AuthenticateSession(ctx context.Context, secret string) (*kiln.Token, error) {
	if !wellFormed(secret, sessionPrefix) {
		return nil, errBadSecret("session")
	}
	var t *kiln.Token
	var expires time.Time
	err := db.read(ctx, func(tx *tx) error {
		var err error
		t, err = scanToken(tx.queryRow(ctx, `SELECT t.id, t.name, t.role, t.created_at, t.created_by, t.expires_at, t.revoked_at, s.expires_at
			FROM sessions s JOIN tokens t ON t.id = s.token_id WHERE s.secret_hash = ?`, secretHash(secret)), dbTime{&expires})
		return err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return nil, kiln.Errorf(kiln.EUNAUTH, "the session has ended; sign in again")
	}
	if err != nil {
		return nil, err
	}
	now := db.now()
	if !now.Before(expires) {
		return nil, kiln.Errorf(kiln.EUNAUTH, "the session expired at %s; sign in again", expires.Format(time.RFC3339))
	}
	return t, usable(t, now)
}

// DeleteSession ends a session (sign-out), auditing it when it existed.
func (db *DB) DeleteSession(ctx context.Context, secret string) error {
	if !wellFormed(secret, sessionPrefix) {
		return nil
	}
	return db.write(ctx, func(tx *tx) error {
		var tokenID int64
		err := tx.queryRow(ctx, `DELETE FROM sessions WHERE secret_hash = ? RETURNING token_id`, secretHash(secret)).Scan(&tokenID)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("end session: %w", err)
		}
		var name string
		if err := tx.queryRow(ctx, `SELECT name FROM tokens WHERE id = ?`, tokenID).Scan(&name); err != nil {
			return fmt.Errorf("end session: find its token: %w", err)
		}
		return audit(ctx, tx, "session.delete", "token "+name, "")
	})
}

package store

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// advance moves the test clock forward by d.
func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestTokens(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:alice")
		tok, secret, err := e.CreateToken(ctx, &kiln.NewToken{Name: "ci", Role: kiln.RoleBuilder})
		if err != nil {
			t.Fatal(err)
		}
		if !wellFormed(secret, TokenPrefix) || len(secret) != len(TokenPrefix)+52 {
			t.Fatalf("secret %q is not kiln_ + 52 base32 characters", secret)
		}
		if tok.Name != "ci" || tok.Role != kiln.RoleBuilder || tok.CreatedBy != "local:alice" || !tok.ExpiresAt.IsZero() {
			t.Fatalf("created %+v", tok)
		}
		// Only the hash is stored.
		var stored string
		if err := e.raw.QueryRow(e.rebind(`SELECT secret_hash FROM tokens WHERE name = ?`), "ci").Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if stored == secret || strings.Contains(stored, secret[len(TokenPrefix):]) || stored != secretHash(secret) {
			t.Fatalf("stored %q for secret", stored)
		}
		if e.kind == "sqlite" {
			path := strings.TrimPrefix(e.url, "sqlite:")
			for _, f := range []string{path, path + "-wal"} {
				if data, err := os.ReadFile(f); err == nil && bytes.Contains(data, []byte(secret[len(TokenPrefix):])) {
					t.Fatalf("%s holds the token's secret", f)
				}
			}
		}

		got := must[*kiln.Token](t)(e.Authenticate(ctx, secret))
		if got.Name != "ci" || got.Role != kiln.RoleBuilder {
			t.Fatalf("authenticated as %+v", got)
		}
		// A wrong secret of the right shape, garbage, and the empty string.
		other, _ := newSecret(TokenPrefix)
		for _, bad := range []string{other, "kiln_abc", "", secret + "a", strings.ToUpper(secret)} {
			_, err := e.Authenticate(ctx, bad)
			msg := wantCode(t, err, kiln.EUNAUTH)
			if bad != "" && strings.Contains(msg, bad) {
				t.Errorf("message repeats the secret: %s", msg)
			}
		}

		wantCode(t, errOf(e.CreateToken(ctx, &kiln.NewToken{Name: "ci", Role: kiln.RoleViewer})), kiln.ECONFLICT)
		wantCode(t, errOf(e.CreateToken(ctx, &kiln.NewToken{Name: "Bad Name", Role: kiln.RoleViewer})), kiln.EINVALID)
		wantCode(t, errOf(e.CreateToken(ctx, &kiln.NewToken{Name: "x", Role: "root"})), kiln.EINVALID)
		wantCode(t, errOf(e.CreateToken(ctx, &kiln.NewToken{Name: "x", Role: kiln.RoleViewer, ExpiresAt: e.clock.Now().Add(-time.Hour)})), kiln.EINVALID)

		// Expiry: valid until the clock passes it.
		_, short, err := e.CreateToken(ctx, &kiln.NewToken{Name: "short", Role: kiln.RoleAgent, ExpiresAt: e.clock.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		must[*kiln.Token](t)(e.Authenticate(ctx, short))
		e.clock.advance(2 * time.Hour)
		wantContains(t, wantCode(t, errOf(e.Authenticate(ctx, short)), kiln.EUNAUTH), "short expired")

		// Sessions follow their token.
		sess, err := e.CreateSession(ctx, got, e.clock.Now().Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if st := must[*kiln.Token](t)(e.AuthenticateSession(ctx, sess)); st.Name != "ci" {
			t.Fatalf("session is %s", st.Name)
		}
		wantCode(t, errOf(e.AuthenticateSession(ctx, secret)), kiln.EUNAUTH) // a token is not a session

		revoked := must[*kiln.Token](t)(e.RevokeToken(ctx, "ci"))
		if revoked.RevokedAt.IsZero() {
			t.Fatal("no revocation time")
		}
		wantContains(t, wantCode(t, errOf(e.Authenticate(ctx, secret)), kiln.EUNAUTH), "ci was revoked")
		wantCode(t, errOf(e.AuthenticateSession(ctx, sess)), kiln.EUNAUTH)
		wantCode(t, errOf(e.CreateSession(ctx, got, e.clock.Now().Add(time.Hour))), kiln.EUNAUTH)
		wantCode(t, errOf(e.RevokeToken(ctx, "ci")), kiln.ECONFLICT)
		wantCode(t, errOf(e.RevokeToken(ctx, "nope")), kiln.ENOTFOUND)

		ts := must[[]*kiln.Token](t)(e.ListTokens(ctx))
		if len(ts) != 2 || ts[0].Name != "ci" || ts[0].RevokedAt.IsZero() || ts[1].Name != "short" || ts[1].ExpiresAt.IsZero() {
			t.Fatalf("list: %+v %+v", ts[0], ts[1])
		}

		// Every token change is in the audit log, with its actor.
		var actions []string
		for _, a := range must[[]*kiln.AuditEntry](t)(e.ListAudit(ctx, kiln.AuditFilter{Actor: "local:alice"})) {
			actions = append(actions, a.Action+" "+a.Target)
		}
		want := "token.create token ci,token.create token short,session.create token ci,token.revoke token ci"
		if strings.Join(actions, ",") != want {
			t.Fatalf("audit: %s\nwant %s", strings.Join(actions, ","), want)
		}
	})
}

func TestSessionExpiry(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tok, _, err := e.CreateToken(ctx, &kiln.NewToken{Name: "web", Role: kiln.RoleViewer, ExpiresAt: e.clock.Now().Add(30 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		// A session asked for longer than its token lives ends with it.
		sess, err := e.CreateSession(ctx, tok, e.clock.Now().Add(24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		must[*kiln.Token](t)(e.AuthenticateSession(ctx, sess))
		e.clock.advance(time.Hour)
		wantCode(t, errOf(e.AuthenticateSession(ctx, sess)), kiln.EUNAUTH)
		if err := e.DeleteSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		wantContains(t, wantCode(t, errOf(e.AuthenticateSession(ctx, sess)), kiln.EUNAUTH), "sign in again")
	})
}

// errOf keeps the error of a call that returns values too.
func errOf(vs ...any) error {
	if err, ok := vs[len(vs)-1].(error); ok {
		return err
	}
	return nil
}

// Ended sessions do not pile up: the next sign-in removes them.
func TestEndedSessionsAreRemoved(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		tok, _, err := e.CreateToken(ctx, &kiln.NewToken{Name: "web", Role: kiln.RoleViewer})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			must[string](t)(e.CreateSession(ctx, tok, e.clock.Now().Add(time.Hour)))
		}
		e.clock.advance(2 * time.Hour)
		live := must[string](t)(e.CreateSession(ctx, tok, e.clock.Now().Add(time.Hour)))
		var n int
		if err := e.raw.QueryRow(`SELECT COUNT(*) FROM sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("%d sessions kept, want only the live one", n)
		}
		must[*kiln.Token](t)(e.AuthenticateSession(ctx, live))
	})
}

package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// ContentSecurityPolicy allows the page's own scripts, styles and images
// only: no inline script, no framing, forms post back to kiln itself.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// securityHeaders are SecurityHeaders' headers.
var securityHeaders = []struct {
	key   string // canonical, as Header.Set would make it
	value []string
}{
	{"Content-Security-Policy", []string{ContentSecurityPolicy}[:1:1]},
	{"X-Content-Type-Options", []string{"nosniff"}[:1:1]},
	{"X-Frame-Options", []string{"DENY"}[:1:1]},
	{"Referrer-Policy", []string{"no-referrer"}[:1:1]},
	{"Cross-Origin-Opener-Policy", []string{"same-origin"}[:1:1]},
}

// SecurityHeaders sets the headers every kiln response carries: the CSP,
// no MIME sniffing, no framing (old browsers too), no referrer leaving kiln.
func SecurityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, kv := range securityHeaders {
			// The same one-element slices on every response: Set would
			// allocate one per header per request. Cap 1, so an Add
			// elsewhere copies rather than writes into them.
			h[kv.key] = kv.value
		}
		next.ServeHTTP(w, r)
	})
}

// CrossOrigin refuses state-changing requests a browser sends from another
// site (Sec-Fetch-Site, Origin; the standard library's
// http.CrossOriginProtection). Clients that are not browsers send neither
// header and pass; a cookie alone therefore never lets another site post a
// form to kiln.
func CrossOrigin(next http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &ErrorBody{HTTPStatus: http.StatusForbidden, Code: kiln.EFORBIDDEN,
			Message: "cross-origin request refused: kiln only accepts changes sent from its own pages or from non-browser clients"})
	}))
	return p.Handler(next)
}

// SessionCookie is the dashboard's session cookie.
const SessionCookie = "kiln_session"

// DefaultSessionTTL is how long a dashboard sign-in lasts.
const DefaultSessionTTL = 12 * time.Hour

// Sessions signs dashboard users in with an API token and keeps them
// signed in with a session cookie: HttpOnly (no script reads it),
// SameSite=Strict (no other site sends it), Secure when served over TLS.
// The session lives in the token store, so revoking the token ends it, and
// several kiln servers on one database share it.
type Sessions struct {
	Tokens kiln.TokenStore
	// Secure marks the cookie Secure; set it when kiln serves TLS.
	Secure bool
	TTL    time.Duration // DefaultSessionTTL when zero
	Logger *slog.Logger
	Clock  kiln.Clock // time.Now when nil
}

func (s *Sessions) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

// SignIn checks an API token's secret, opens a session for it and sets the
// cookie. EUNAUTH for a bad token; the secret is never logged.
func (s *Sessions) SignIn(w http.ResponseWriter, r *http.Request, secret string) (*kiln.Token, error) {
	tok, err := s.Tokens.Authenticate(r.Context(), secret)
	if err != nil {
		return nil, err
	}
	ttl := s.TTL
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	ctx := kiln.WithActor(sourceContext(r), TokenActor(tok))
	expires := s.now().Add(ttl)
	sess, err := s.Tokens.CreateSession(ctx, tok, expires)
	if err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: sess, Path: "/", Expires: expires, MaxAge: int(ttl.Seconds()),
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode,
	})
	return tok, nil
}

// SignOut ends the request's session, if any, and clears the cookie.
func (s *Sessions) SignOut(w http.ResponseWriter, r *http.Request) error {
	var err error
	if c, cerr := r.Cookie(SessionCookie); cerr == nil {
		ctx := sourceContext(r)
		if tok, aerr := s.Tokens.AuthenticateSession(ctx, c.Value); aerr == nil {
			ctx = kiln.WithActor(ctx, TokenActor(tok))
		}
		err = s.Tokens.DeleteSession(ctx, c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.Secure, SameSite: http.SameSiteStrictMode})
	return err
}

// Require serves next only to a signed-in user (session cookie or bearer
// token) whose role allows need; the token is in the request's context
// (TokenFrom) and is its actor. Others get unauthenticated (nil: a plain
// 401) or a 403 naming the role needed.
func (s *Sessions) Require(need kiln.Role, unauthenticated http.Handler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := sourceContext(r)
		tok, err := authenticate(ctx, s.Tokens, r)
		if err != nil {
			if unauthenticated != nil {
				unauthenticated.ServeHTTP(w, r)
				return
			}
			http.Error(w, "sign in first: "+kiln.ErrorMessage(err), http.StatusUnauthorized)
			return
		}
		if !tok.Role.Allows(need) {
			http.Error(w, "this page needs the "+string(need)+" role; you are signed in as "+tok.Name+" ("+string(tok.Role)+")", http.StatusForbidden)
			return
		}
		ctx = context.WithValue(kiln.WithActor(ctx, TokenActor(tok)), tokenKey{}, tok)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// sourceContext returns r's context carrying the client's address, unless
// it carries one already.
func sourceContext(r *http.Request) context.Context {
	ctx := r.Context()
	if kiln.SourceFrom(ctx) != "local" {
		return ctx
	}
	return kiln.WithSource(ctx, clientHost(r))
}

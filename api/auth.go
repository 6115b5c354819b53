package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	kiln "github.com/kiln-project/kiln"
)

type tokenKey struct{}

// TokenFrom returns the token a request was authenticated with.
func TokenFrom(ctx context.Context) (*kiln.Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(*kiln.Token)
	return t, ok
}

// TokenActor is how a token appears as the actor of history and audit
// entries.
func TokenActor(t *kiln.Token) string { return "token:" + t.Name }

// anonymous is the actor of a request without valid credentials.
const anonymous = "anonymous"

// credentials returns the secret a request carries: the bearer token, else
// the dashboard's session cookie (session is then true). Empty when none.
func credentials(r *http.Request) (secret string, session bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(rest), false
		}
		return "", false
	}
	if c, err := r.Cookie(SessionCookie); err == nil {
		return c.Value, true
	}
	return "", false
}

// authCache remembers, for a few seconds, which bearer secrets belong to
// which token, so a busy agent's check-ins do not each cost a database
// read. Expiry is checked on every request; a revocation takes effect
// within ttl (on every server sharing the database). Entries are keyed by
// the secret's SHA-256, never by the secret.
type authCache struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[[sha256.Size]byte]cachedToken
}

type cachedToken struct {
	tok     *kiln.Token
	fetched time.Time
}

// maxCachedTokens bounds the cache; when full it starts afresh.
const maxCachedTokens = 10000

func newAuthCache(ttl time.Duration) *authCache {
	if ttl <= 0 {
		return nil
	}
	return &authCache{ttl: ttl, m: map[[sha256.Size]byte]cachedToken{}}
}

// authenticate checks a bearer secret against the store, or the cache.
func (c *authCache) authenticate(ctx context.Context, tokens kiln.TokenStore, secret string) (*kiln.Token, error) {
	if c == nil {
		return tokens.Authenticate(ctx, secret)
	}
	key := sha256.Sum256([]byte(secret))
	now := time.Now()
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok && now.Sub(e.fetched) < c.ttl && e.tok.Active(now) {
		return e.tok, nil
	}
	tok, err := tokens.Authenticate(ctx, secret)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		delete(c.m, key)
		return nil, err
	}
	if len(c.m) >= maxCachedTokens {
		clear(c.m)
	}
	c.m[key] = cachedToken{tok: tok, fetched: now}
	return tok, nil
}

// authenticate returns the token behind a request's credentials.
func authenticate(ctx context.Context, tokens kiln.TokenStore, r *http.Request) (*kiln.Token, error) {
	return authenticateCached(ctx, tokens, nil, r)
}

func authenticateCached(ctx context.Context, tokens kiln.TokenStore, cache *authCache, r *http.Request) (*kiln.Token, error) {
	if tokens == nil {
		return nil, kiln.Errorf(kiln.EUNAUTH, "this server has no token store configured; it accepts no credentials")
	}
	if r.Header.Get("Authorization") != "" {
		if secret, _ := credentials(r); secret == "" {
			return nil, kiln.Errorf(kiln.EUNAUTH, "the Authorization header is not a bearer token; send `Authorization: Bearer kiln_…`")
		}
	}
	secret, session := credentials(r)
	switch {
	case secret == "":
		return nil, kiln.Errorf(kiln.EUNAUTH, "this operation needs a token; send `Authorization: Bearer kiln_…` with a token from `kiln token create`")
	case session:
		return tokens.AuthenticateSession(ctx, secret)
	}
	return cache.authenticate(ctx, tokens, secret)
}

// rolesAllowed lists the roles that may call an operation needing need.
func rolesAllowed(need kiln.Role) string {
	var rs []string
	for _, r := range kiln.Roles {
		if r.Allows(need) {
			rs = append(rs, string(r))
		}
	}
	return strings.Join(rs, ", ")
}

// authorize is the huma middleware every operation passes: public ones go
// through; others need a token whose role allows the operation's declared
// role. Refusals are answered 401/403 and audited as denied. An operation
// without a declared role is refused to everyone (fail closed).
func (s *Server) authorize(hctx huma.Context, next func(huma.Context)) {
	op := hctx.Operation()
	need, _ := op.Metadata["role"].(Role)
	if need == RolePublic {
		next(hctx)
		return
	}
	r, w := humago.Unwrap(hctx)
	ctx := hctx.Context()
	what := op.Method + " " + op.Path
	if !need.Valid() {
		s.cfg.Logger.ErrorContext(ctx, "api: operation declares no role; refusing it", "operation", what)
		writeError(w, &ErrorBody{HTTPStatus: http.StatusInternalServerError, Code: kiln.EINTERNAL,
			Message: "this operation declares no role and is refused to everyone; report this bug"})
		return
	}
	tok, err := authenticateCached(ctx, s.cfg.Tokens, s.authCache, r)
	if err != nil {
		if kiln.ErrorCode(err) != kiln.EUNAUTH {
			var body *ErrorBody
			if !errors.As(s.toHTTP(err), &body) {
				body = &ErrorBody{HTTPStatus: http.StatusInternalServerError, Code: kiln.EINTERNAL, Message: "internal error"}
			}
			writeError(w, body)
			return
		}
		s.deny(ctx, w, anonymous, what, kiln.EUNAUTH,
			&ErrorBody{HTTPStatus: http.StatusUnauthorized, Code: kiln.EUNAUTH, Message: kiln.ErrorMessage(err)})
		return
	}
	if !tok.Role.Allows(need) {
		s.deny(ctx, w, TokenActor(tok), what, kiln.EFORBIDDEN, &ErrorBody{HTTPStatus: http.StatusForbidden, Code: kiln.EFORBIDDEN,
			Message: fmt.Sprintf("%s needs the %s role (allowed: %s); token %s has role %s — ask an admin for a token with that role",
				what, need, rolesAllowed(need), tok.Name, tok.Role)})
		return
	}
	if need == kiln.RoleAgent && s.checkins != nil {
		if wait, ok := s.checkins.allow(tok.Name, time.Now()); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
			writeError(w, &ErrorBody{HTTPStatus: http.StatusTooManyRequests, Code: kiln.EUNAVAILABLE,
				Message: fmt.Sprintf("token %s sends more than %g check-ins per second; retry after %s, or spread agents over several tokens",
					tok.Name, s.checkins.rate, wait.Round(time.Millisecond))})
			return
		}
	}
	ctx = context.WithValue(kiln.WithActor(ctx, TokenActor(tok)), tokenKey{}, tok)
	next(huma.WithContext(hctx, ctx))
}

// limiter is a token bucket per API token: rate per second, up to burst at
// once. Buckets idle long enough to be full again are dropped.
type limiter struct {
	rate    float64
	burst   float64
	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		return nil
	}
	if burst < 1 {
		burst = 1
	}
	return &limiter{rate: rate, burst: float64(burst), buckets: map[string]*bucket{}}
}

// allow takes one request from name's bucket, or says how long to wait.
func (l *limiter) allow(name string, now time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > time.Minute {
		full := time.Duration(l.burst / l.rate * float64(time.Second))
		for k, b := range l.buckets {
			if now.Sub(b.last) > full {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b, ok := l.buckets[name]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[name] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return time.Duration((1 - b.tokens) / l.rate * float64(time.Second)), false
	}
	b.tokens--
	return 0, true
}

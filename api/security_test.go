package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

// authEnv is a server with one token per role, plus a revoked and an
// expired one.
type authEnv struct {
	ts      *httptest.Server
	srv     *api.Server
	db      *store.DB
	clock   *clock
	tokens  map[kiln.Role]string
	revoked string
	expired string
}

// clock is a settable kiln.Clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newAuthEnv(t *testing.T, logger *slog.Logger) *authEnv {
	t.Helper()
	c := &clock{t: time.Now()}
	db, err := store.Open(context.Background(), "", t.TempDir(), logger, c.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &authEnv{db: db, clock: c, tokens: map[kiln.Role]string{}}
	e.srv = api.New(api.Config{Logger: logger, CheckinRate: -1, RefusalRate: -1, StartRuns: noRuns{}}.WithStores(db))
	e.ts = httptest.NewServer(e.srv)
	t.Cleanup(e.ts.Close)
	ctx := kiln.WithActor(context.Background(), "local:test")
	mk := func(name string, role kiln.Role, expires time.Time) string {
		_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: name, Role: role, ExpiresAt: expires})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	for _, r := range kiln.Roles {
		e.tokens[r] = mk(string(r), r, time.Time{})
	}
	e.revoked = mk("revoked-admin", kiln.RoleAdmin, time.Time{})
	if _, err := db.RevokeToken(ctx, "revoked-admin"); err != nil {
		t.Fatal(err)
	}
	e.expired = mk("expired-admin", kiln.RoleAdmin, c.t.Add(time.Minute))
	c.t = c.t.Add(time.Hour)
	return e
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

// request sends method path with token (none when empty) and a body for
// methods that take one.
func (e *authEnv) request(t *testing.T, token, method, path string) (int, map[string]any) {
	t.Helper()
	body := ""
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = "{}"
	}
	return doAs(t, e.ts, token, method, pathParam.ReplaceAllString(path, "1"), body)
}

// Every registered route × every role: no token → 401, a role that may not
// → 403 naming the role needed, a role that may → neither. Expired and
// revoked tokens → 401. Public routes need no token.
func TestRouteRoles(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	routes := e.srv.Routes()
	if len(routes) < 10 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, r := range routes {
		t.Run(r.Method+" "+r.Path, func(t *testing.T) {
			if r.Role != api.RolePublic && !r.Role.Valid() {
				t.Fatalf("declares no valid role (%q): every route must say who may call it", r.Role)
			}
			if r.Role == api.RolePublic {
				if strings.HasPrefix(r.Path, "/api/") {
					t.Fatalf("an /api/ route is public")
				}
				if code, m := e.request(t, "", r.Method, r.Path); code == 401 || code == 403 {
					t.Fatalf("public route answered %d %v", code, m)
				}
				return
			}
			if code, m := e.request(t, "", r.Method, r.Path); code != 401 || m["code"] != kiln.EUNAUTH {
				t.Fatalf("no token: %d %v, want 401", code, m)
			}
			for name, tok := range map[string]string{"revoked": e.revoked, "expired": e.expired,
				"malformed": "kiln_notatoken", "unknown": "kiln_" + strings.Repeat("a", 52)} {
				if code, m := e.request(t, tok, r.Method, r.Path); code != 401 {
					t.Errorf("%s token: %d %v, want 401", name, code, m)
				}
			}
			for _, role := range kiln.Roles {
				code, m := e.request(t, e.tokens[role], r.Method, r.Path)
				switch {
				case role.Allows(r.Role) && (code == 401 || code == 403):
					t.Errorf("role %s may call it (needs %s) but got %d %v", role, r.Role, code, m)
				case !role.Allows(r.Role) && code != 403:
					t.Errorf("role %s may not call it (needs %s) but got %d %v", role, r.Role, code, m)
				case !role.Allows(r.Role):
					msg, _ := m["message"].(string)
					if m["code"] != kiln.EFORBIDDEN || !strings.Contains(msg, "needs the "+string(r.Role)+" role") {
						t.Errorf("role %s: 403 message %q does not name the role needed (%s)", role, msg, r.Role)
					}
				}
			}
		})
	}
}

// Every operation in the OpenAPI document went through register (and so
// declared its role): an operation added with huma.Register directly would
// bypass the routes table.
func TestOpenAPIOperationsAreRoutes(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	resp, err := http.Get(e.ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, r := range e.srv.Routes() {
		declared[r.Method+" "+r.Path] = true
	}
	n := 0
	for path, ops := range doc.Paths {
		for method := range ops {
			n++
			if !declared[strings.ToUpper(method)+" "+path] {
				t.Errorf("%s %s is in the OpenAPI document but not in Routes(): register it with register()", strings.ToUpper(method), path)
			}
		}
	}
	if n == 0 {
		t.Fatal("no operations in the OpenAPI document")
	}
}

// Refused requests are audited (result denied), without the secret.
func TestDeniedRequestsAudited(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	e.request(t, "", "POST", "/api/v1/images")
	e.request(t, e.tokens[kiln.RoleViewer], "POST", "/api/v1/images")
	e.request(t, e.revoked, "GET", "/api/v1/images")
	es, err := e.db.ListAudit(context.Background(), kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range es {
		if a.Result == kiln.AuditDenied {
			got = append(got, a.Actor+" "+a.Target+" "+a.Detail+" "+a.Source)
		}
	}
	want := []string{
		"anonymous POST /api/v1/images unauthorized 127.0.0.1",
		"token:viewer POST /api/v1/images forbidden 127.0.0.1",
		"anonymous GET /api/v1/images unauthorized 127.0.0.1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("denied entries:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// A successful change is audited under the token's name.
	if code, _ := e.request(t, e.tokens[kiln.RoleBuilder], "POST", "/api/v1/images"); code != 400 {
		t.Fatalf("empty image: %d", code)
	}
	doAs(t, e.ts, e.tokens[kiln.RoleBuilder], "POST", "/api/v1/images", `{"name":"web"}`)
	es, _ = e.db.ListAudit(context.Background(), kiln.AuditFilter{Target: "web"})
	if len(es) != 1 || es[0].Actor != "token:builder" || es[0].Source != "127.0.0.1" || es[0].Action != "image.create" {
		t.Fatalf("image.create entry: %+v", es)
	}
}

// Every response carries the security headers; a browser's cross-site
// form post is refused even with a valid session cookie.
func TestSecurityHeadersAndCrossOrigin(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	resp, err := http.Get(e.ts.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for h, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
		"Content-Security-Policy": "frame-ancestors 'none'",
	} {
		if !strings.Contains(resp.Header.Get(h), want) {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), want)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") || !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("CSP allows inline script: %s", csp)
	}
	req, _ := http.NewRequest("POST", e.ts.URL+"/api/v1/images", strings.NewReader(`{"name":"evil"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.tokens[kiln.RoleAdmin])
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(data), "cross-origin") {
		t.Fatalf("cross-site post: %d %s", resp.StatusCode, data)
	}
}

// noRuns stands in for the server's run starter so that POST /api/v1/runs
// is registered and walked by the route × role test.
type noRuns struct{}

func (noRuns) StartRuns(context.Context, kiln.RunRequest) ([]*kiln.Run, error) { return nil, nil }

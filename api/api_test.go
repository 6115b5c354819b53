package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

func newServer(t *testing.T) (*httptest.Server, *api.Server) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s := api.New(api.Config{}.WithStores(db))
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	// The API always needs a token (docs/security.md): do sends this
	// admin's, created on the database directly as `kiln token create` does.
	_, secret, err := db.CreateToken(kiln.WithActor(context.Background(), "local:test"), &kiln.NewToken{Name: "test-admin", Role: kiln.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	adminTokens.Store(ts, secret)
	t.Cleanup(func() { adminTokens.Delete(ts) })
	return ts, s
}

// adminTokens maps each test server to the admin token do sends to it.
var adminTokens sync.Map

func do(t *testing.T, ts *httptest.Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	secret, _ := adminTokens.Load(ts)
	s, _ := secret.(string)
	return doAs(t, ts, s, method, path, body)
}

// doAs sends a request with token (none when empty) and decodes the JSON
// answer.
func doAs(t *testing.T, ts *httptest.Server, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode, m
}

func TestVersionsOverHTTP(t *testing.T) {
	ts, _ := newServer(t)
	if code, m := do(t, ts, "GET", "/healthz", ""); code != 200 || m["status"] != "ok" {
		t.Fatalf("healthz: %d %v", code, m)
	}
	if code, _ := do(t, ts, "POST", "/api/v1/images", `{"name":"basic-linux"}`); code != 201 {
		t.Fatalf("create image: %d", code)
	}
	code, m := do(t, ts, "POST", "/api/v1/images/basic-linux/versions",
		`{"semver":"1.0.4","packages":[{"name":"libssl3","version":"3.0.11-1~deb12u2","architecture":"amd64"}],"tags":{"team":"platform"}}`)
	if code != 201 || m["name"] != "basic-linux-1" {
		t.Fatalf("create version: %d %v", code, m)
	}
	if code, m := do(t, ts, "GET", "/api/v1/images/basic-linux/versions/latest?status=ready", ""); code != 404 || m["code"] != kiln.ENOTFOUND {
		t.Fatalf("latest ready before any ready: %d %v", code, m)
	}
	for _, st := range []string{"tested", "ready"} {
		if code, m := do(t, ts, "POST", "/api/v1/images/basic-linux/versions/1/status", `{"status":"`+st+`","reason":"ok"}`); code != 200 || m["status"] != st {
			t.Fatalf("status %s: %d %v", st, code, m)
		}
	}
	code, m = do(t, ts, "GET", "/api/v1/images/basic-linux/versions/latest?status=ready", "")
	if code != 200 || m["name"] != "basic-linux-1" {
		t.Fatalf("latest ready: %d %v", code, m)
	}
	code, m = do(t, ts, "GET", "/api/v1/images/basic-linux/versions?tag=team=platform&status=ready", "")
	if code != 200 || m["total"] != float64(1) {
		t.Fatalf("list: %d %v", code, m)
	}
	code, m = do(t, ts, "GET", "/api/v1/images/basic-linux/versions/1/history", "")
	if code != 200 || len(m["history"].([]any)) != 4 {
		t.Fatalf("history: %d %v", code, m)
	}
	if actor := m["history"].([]any)[3].(map[string]any)["actor"]; actor != "token:test-admin" {
		t.Errorf("history actor %v, want the token's name", actor)
	}
	if code, _ := do(t, ts, "GET", "/openapi.json", ""); code != 200 {
		t.Fatalf("openapi: %d", code)
	}
}

func TestAPIErrors(t *testing.T) {
	ts, _ := newServer(t)
	do(t, ts, "POST", "/api/v1/images", `{"name":"appserver"}`)
	do(t, ts, "POST", "/api/v1/images/appserver/versions", `{}`)
	big := `{"name":"x","description":"` + strings.Repeat("a", 2<<20) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"malformed JSON", "POST", "/api/v1/images", `{"name":`, 400, kiln.EINVALID, ""},
		{"unknown field", "POST", "/api/v1/images", `{"name":"x","colour":"red"}`, 400, kiln.EINVALID, "body.colour"},
		{"bad name", "POST", "/api/v1/images", `{"name":"Bad_Name"}`, 400, kiln.EINVALID, "body.name"},
		{"duplicate", "POST", "/api/v1/images", `{"name":"appserver"}`, 409, kiln.ECONFLICT, ""},
		{"oversized", "POST", "/api/v1/images", big, 413, kiln.EINVALID, ""},
		{"unknown image", "GET", "/api/v1/images/nope/versions/1", "", 404, kiln.ENOTFOUND, ""},
		{"bad semver", "POST", "/api/v1/images/appserver/versions", `{"semver":"1.0"}`, 400, kiln.EINVALID, "body.semver"},
		{"system tag", "POST", "/api/v1/images/appserver/versions", `{"tags":{"Name":"x"}}`, 400, kiln.EINVALID, "body.tags"},
		{"illegal transition", "POST", "/api/v1/images/appserver/versions/1/status", `{"status":"ready"}`, 409, kiln.ECONFLICT, ""},
		{"bad status", "POST", "/api/v1/images/appserver/versions/1/status", `{"status":"shipped"}`, 400, kiln.EINVALID, "body.status"},
		{"bad parent", "POST", "/api/v1/images/appserver/versions", `{"method":"reheat","parent":"appserver-9"}`, 404, kiln.ENOTFOUND, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m := do(t, ts, c.method, c.path, c.body)
			if code != c.status || m["code"] != c.code {
				t.Fatalf("got %d %v; want %d code %s", code, m, c.status, c.code)
			}
			if c.field != "" && m["field"] != c.field {
				t.Errorf("field = %v, want %s (body %v)", m["field"], c.field, m)
			}
			if msg, _ := m["message"].(string); msg == "" {
				t.Errorf("no message in %v", m)
			}
		})
	}
	// Nothing of the failed calls was written.
	code, m := do(t, ts, "GET", "/api/v1/images/appserver/versions", "")
	if code != 200 || m["total"] != float64(1) {
		t.Fatalf("after errors: %d %v", code, m)
	}
}

// Every route declares the role it needs; a route without one is a bug that
// would ship an open endpoint.
func TestEveryRouteDeclaresRole(t *testing.T) {
	_, s := newServer(t)
	if len(s.Routes()) < 10 {
		t.Fatalf("only %d routes registered", len(s.Routes()))
	}
	for _, r := range s.Routes() {
		if r.Role == "" {
			t.Errorf("%s %s has no role", r.Method, r.Path)
		}
		if r.Role == api.RolePublic && strings.HasPrefix(r.Path, "/api/") {
			t.Errorf("%s %s is public", r.Method, r.Path)
		}
	}
}

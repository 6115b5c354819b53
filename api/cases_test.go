package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

// storeServer is newServer that also hands back the database, for tests
// that set up what the API only reads (runs, attachments, instances).
func storeServer(t *testing.T) (*httptest.Server, *store.DB) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ts := httptest.NewServer(api.New(api.Config{}.WithStores(db)))
	t.Cleanup(ts.Close)
	_, secret, err := db.CreateToken(kiln.WithActor(context.Background(), "local:test"), &kiln.NewToken{Name: "test-admin", Role: kiln.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	adminTokens.Store(ts, secret)
	t.Cleanup(func() { adminTokens.Delete(ts) })
	return ts, db
}

// apiCase is one request and what must come back: the status, and for
// errors the code, the field at fault and words the message must hold.
type apiCase struct {
	name, method, path, body string
	status                   int
	code, field, says        string
	// check, when set, looks at a successful answer.
	check func(t *testing.T, m map[string]any)
}

// runCases sends each case in order (later cases may depend on earlier
// ones) as the test admin.
func runCases(t *testing.T, ts *httptest.Server, cases []apiCase) {
	t.Helper()
	for _, c := range cases {
		code, m := do(t, ts, c.method, c.path, c.body)
		if code != c.status {
			t.Errorf("%s: %s %s → %d %v; want %d", c.name, c.method, c.path, code, m, c.status)
			continue
		}
		if c.code != "" && m["code"] != c.code {
			t.Errorf("%s: code %v, want %s (%v)", c.name, m["code"], c.code, m)
		}
		if c.field != "" && m["field"] != c.field {
			t.Errorf("%s: field %v, want %s (%v)", c.name, m["field"], c.field, m)
		}
		if msg, _ := m["message"].(string); c.says != "" && !strings.Contains(msg, c.says) {
			t.Errorf("%s: message %q does not say %q", c.name, msg, c.says)
		}
		if c.check != nil {
			c.check(t, m)
		}
	}
}

// list returns m[key] as a list of objects.
func list(t *testing.T, m map[string]any, key string) []map[string]any {
	t.Helper()
	raw, ok := m[key].([]any)
	if !ok {
		t.Fatalf("%s is not a list in %v", key, m)
	}
	out := make([]map[string]any, len(raw))
	for i, r := range raw {
		out[i], _ = r.(map[string]any)
	}
	return out
}

// FuzzCLIWriteBodies is FuzzAPIDecoding for the write operations behind
// `kiln policy` and `kiln webhook`: no body makes a 5xx or an answer that
// is not kiln's error body. `go test ./api -run '^$' -fuzz FuzzCLIWriteBodies`.
func FuzzCLIWriteBodies(f *testing.F) {
	targets := []struct{ method, path string }{
		{"PUT", "/api/v1/fleet/policies/prod"},
		{"POST", "/api/v1/webhooks"},
	}
	db, err := store.Open(context.Background(), "", f.TempDir(), nil, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	_, secret, err := db.CreateToken(context.Background(), &kiln.NewToken{Name: "fuzz", Role: kiln.RoleAdmin})
	if err != nil {
		f.Fatal(err)
	}
	s := api.New(api.Config{}.WithStores(db))
	for i, seed := range []string{
		`{"max_age_seconds":7776000}`, `{"max_age_seconds":-1}`, `{"max_age_seconds":1e400}`, `{"max_age_seconds":"90d"}`, `{}`, `null`,
		`{"url":"https://ci.example.com/h","secret":"0123456789abcdef","events":["ready"]}`,
		`{"url":"javascript:alert(1)","secret":"` + strings.Repeat("x", 2000) + `","events":["ready","ready","x"]}`,
		`{"url":"https://x","secret":"0123456789abcdef","events":null,"id":7}`,
	} {
		f.Add(uint8(i), seed)
	}
	f.Fuzz(func(t *testing.T, target uint8, body string) {
		op := targets[int(target)%len(targets)]
		req := httptest.NewRequest(op.method, op.path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+secret)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s with %q: %d %s", op.method, op.path, body, w.Code, w.Body)
		}
		if w.Code >= 300 {
			var e api.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Code == "" || e.Message == "" || e.HTTPStatus != w.Code {
				t.Fatalf("%s %s with %q: %d answered %q, not an error body", op.method, op.path, body, w.Code, w.Body)
			}
		}
	})
}

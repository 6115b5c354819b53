package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/store"
)

// fuzzTargets are the operations that decode a JSON body.
var fuzzTargets = []struct{ method, path string }{
	{"POST", "/api/v1/images"},
	{"POST", "/api/v1/images/appserver/versions"},
	{"POST", "/api/v1/images/appserver/versions/1/status"},
	{"PATCH", "/api/v1/images/appserver/versions/1/tags"},
	{"POST", fleet.CheckinPath},
}

// FuzzAPIDecoding sends arbitrary bodies to the operations that decode
// JSON: whatever comes in, the answer is never a 5xx, and every refusal is
// kiln's error body with a code and a message. Run it with
// `go test ./api -run '^$' -fuzz FuzzAPIDecoding`; inputs that once failed
// are kept under testdata/fuzz/.
func FuzzAPIDecoding(f *testing.F) {
	db, err := store.Open(context.Background(), "", f.TempDir(), nil, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() })
	ctx := kiln.WithActor(context.Background(), "local:fuzz")
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		f.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
		f.Fatal(err)
	}
	_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: "fuzz", Role: kiln.RoleAdmin})
	if err != nil {
		f.Fatal(err)
	}
	s := api.New(api.Config{CheckinRate: -1}.WithStores(db))

	for i, seed := range []string{
		`{"name":"web"}`, `{"name":"web","colour":"red"}`, `{"name":`, `[]`, `null`, `"x"`, `{"name":"\u0000"}`,
		`{"semver":"1.0.4","packages":[{"name":"libssl3","version":"3.0.11-1~deb12u2","architecture":"amd64"}],"tags":{"team":"a"}}`,
		`{"method":"reheat","parent":"appserver-1","artifact":{"ref":"sha256:aa","digest":"sha256:aa","size":-1}}`,
		`{"sources":[{"kind":"git","ref":"x"}],"started_at":"2026-13-45T99:00:00Z"}`,
		`{"status":"tested","reason":"ok"}`, `{"status":"shipped"}`, `{"status":1e400}`,
		`{"set":{"team":"web","Name":"x"},"remove":["a"]}`, `{"set":{"":"x"}}`,
		`{"instance_id":"web-1","release":{"image":"appserver","version":"1"}}`,
		`{"instance_id":"web-1","release":{"image":"../../etc","version":"-1"},"labels":{"a":"` + strings.Repeat("b", 300) + `"}}`,
		`{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{"a":{}}}}}}}}}}}`,
	} {
		f.Add(uint8(i), seed)
	}
	f.Fuzz(func(t *testing.T, target uint8, body string) {
		op := fuzzTargets[int(target)%len(fuzzTargets)]
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
			if w.Code == http.StatusUnauthorized || w.Code == http.StatusForbidden {
				t.Fatalf("admin refused: %s", w.Body)
			}
		}
	})
}

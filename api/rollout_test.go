package api_test

import (
	"context"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
)

// rolloutEnv is a server with a rollout host (no platform: the requests
// here are refused before anything is launched) and an operator token.
func rolloutEnv(t *testing.T, withHost bool) (*httptest.Server, *store.DB, string) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cfg := api.Config{AuthCacheTTL: -1}.WithStores(db)
	if withHost {
		h := &rollout.Host{Engine: &rollout.Engine{Services: db, Rollouts: db, Registry: db}, DataDir: t.TempDir(),
			FrontEnd: func(string) ([]string, []string) { return []string{"/bin/false"}, nil }}
		bctx, cancel := context.WithCancel(ctx)
		wait := h.Background(bctx)
		t.Cleanup(func() { cancel(); wait() })
		cfg.Rollouts = h
	}
	ts := httptest.NewServer(api.New(cfg))
	t.Cleanup(ts.Close)
	_, tok, err := db.CreateToken(ctx, &kiln.NewToken{Name: "op", Role: kiln.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18999"}); err != nil {
		t.Fatal(err)
	}
	return ts, db, tok
}

// Bad requests to the service and rollout routes are refused with the
// status, code and field that say what was wrong.
func TestRolloutRoutesBadInput(t *testing.T) {
	ts, db, tok := rolloutEnv(t, true)
	cases := []struct {
		name, method, path, body string
		status                   int
		field, contains          string
	}{
		{"unknown service", "POST", "/api/v1/services/nosuch/rollouts", `{"to":"appserver-1"}`, 404, "", "nosuch"},
		{"bad version name", "POST", "/api/v1/services/web/rollouts", `{"to":"appserver-x"}`, 400, "body.to", "appserver-x"},
		{"resume and to", "POST", "/api/v1/services/web/rollouts", `{"to":"appserver-1","resume":true}`, 400, "body.to", "not both"},
		{"unknown field", "POST", "/api/v1/services/web/rollouts", `{"version":"appserver-1"}`, 400, "", ""},
		{"unknown rollout", "GET", "/api/v1/rollouts/99", "", 404, "", "99"},
		{"front end of unknown service", "GET", "/api/v1/services/nosuch/front-end", "", 404, "", "nosuch"},
		{"delete unknown service", "DELETE", "/api/v1/services/nosuch", "", 404, "", "nosuch"},
		{"front end of a path", "DELETE", "/api/v1/services/..%2F..%2Fetc/front-end", "", 400, "path.service", ""},
		{"front end of a dot name", "GET", "/api/v1/services/.web/front-end", "", 400, "path.service", ""},
		{"service replicas", "POST", "/api/v1/services", `{"name":"api","image":"appserver","environment":"prod","replicas":0,"listen":"127.0.0.1:18998"}`, 400, "body.replicas", "1 to 1000"},
		{"service listen", "POST", "/api/v1/services", `{"name":"api","image":"appserver","environment":"prod","replicas":1,"listen":"10.0.0.1:80"}`, 400, "body.port", "loopback"},
		{"service name taken", "POST", "/api/v1/services", `{"name":"web","image":"appserver","environment":"prod","replicas":1,"listen":"127.0.0.1:18997"}`, 409, "", "web"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, m := doAs(t, ts, tok, c.method, c.path, c.body)
			msg, _ := m["message"].(string)
			if code != c.status || (c.field != "" && m["field"] != c.field) || !strings.Contains(msg, c.contains) {
				t.Fatalf("%s %s: %d %v; want %d, field %q, message containing %q", c.method, c.path, code, m, c.status, c.field, c.contains)
			}
		})
	}
	// Nothing was recorded by the refused rollouts.
	if rs, err := db.ListRollouts(context.Background(), "web", 10); err != nil || len(rs) != 0 {
		t.Fatalf("rollouts after refusals: %v %v", rs, err)
	}
}

// A service is created and read back through the API with the defaults
// filled in; a rollout is read with its (here empty) progress.
func TestServiceCreateAndRolloutRead(t *testing.T) {
	ts, db, tok := rolloutEnv(t, true)
	code, m := doAs(t, ts, tok, "POST", "/api/v1/services", `{"name":"api","image":"appserver","environment":"staging","replicas":2,"listen":"127.0.0.1:18996","health":{"kind":"http","path":"/healthz"}}`)
	if code != 201 || m["max_surge"] != float64(1) || m["min_healthy_percent"] != float64(100) || m["port"] != float64(80) {
		t.Fatalf("create: %d %v", code, m)
	}
	ctx := kiln.WithActor(context.Background(), "local:test")
	r := &kiln.Rollout{Service: "api", To: kiln.VersionRef{Image: "appserver", Number: 1}}
	if err := db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	code, m = doAs(t, ts, tok, "GET", "/api/v1/rollouts/"+strconv.FormatInt(r.ID, 10), "")
	got, _ := m["rollout"].(map[string]any)
	if code != 200 || got["state"] != "running" || m["running"] != false || m["next"] != float64(0) {
		t.Fatalf("get rollout: %d %v", code, m)
	}
}

// Without a rollout host (kiln serve on a machine that cannot run
// instances) the routes that need one say where to run the command.
func TestRolloutRoutesWithoutHost(t *testing.T) {
	ts, _, tok := rolloutEnv(t, false)
	for _, p := range []struct{ method, path, body string }{
		{"POST", "/api/v1/services/web/rollouts", `{}`},
		{"POST", "/api/v1/services/web/front-end", ""},
		{"DELETE", "/api/v1/services/web", ""},
	} {
		code, m := doAs(t, ts, tok, p.method, p.path, p.body)
		msg, _ := m["message"].(string)
		if code != 503 || !strings.Contains(msg, "without --server") {
			t.Errorf("%s %s: %d %v; want 503 saying to run it without --server", p.method, p.path, code, m)
		}
	}
}

// A viewer's questions about a front end are answered without a rollout
// host: not known to run, with the front end's last report, so `kiln
// service list|show` work through any server.
func TestFrontEndReadWithoutHost(t *testing.T) {
	ts, db, tok := rolloutEnv(t, false)
	code, m := doAs(t, ts, tok, "GET", "/api/v1/services/web/front-end", "")
	if code != 200 || m["running"] != false || m["status"] != nil {
		t.Fatalf("before any report: %d %v", code, m)
	}
	if err := db.ReportProxy(context.Background(), &kiln.ProxyStatus{Service: "web", PID: 42, Backends: 1, Requests: 9}); err != nil {
		t.Fatal(err)
	}
	code, m = doAs(t, ts, tok, "GET", "/api/v1/services/web/front-end", "")
	st, _ := m["status"].(map[string]any)
	if code != 200 || m["running"] != false || st == nil || st["requests"] != float64(9) {
		t.Fatalf("after a report: %d %v", code, m)
	}
	if code, _ := doAs(t, ts, tok, "GET", "/api/v1/services/nosuch/front-end", ""); code != 404 {
		t.Fatalf("front end of an unknown service: %d", code)
	}
}

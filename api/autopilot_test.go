package api_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
)

// The pause routes do what `kiln service|env pause|resume` and `kiln env
// pauses` do, recorded with the caller and audited; the policy routes what
// `kiln service show|set` do.
func TestAutopilotRoutes(t *testing.T) {
	ts, db, tok := rolloutEnv(t, false)
	ctx := context.Background()
	code, m := doAs(t, ts, tok, "POST", "/api/v1/services/web/pause", `{"reason":"INC-9: the database is failing over"}`)
	if code != 200 || m["kind"] != "service" || m["name"] != "web" || m["actor"] != "token:op" || m["reason"] != "INC-9: the database is failing over" {
		t.Fatalf("pause web: %d %v", code, m)
	}
	if code, m = doAs(t, ts, tok, "POST", "/api/v1/environments/prod/pause", `{"reason":"CHG-42: freeze for the release"}`); code != 200 || m["kind"] != "environment" {
		t.Fatalf("pause prod: %d %v", code, m)
	}
	if p, err := db.FindPause(ctx, kiln.PauseService, "web"); err != nil || p.Actor != "token:op" {
		t.Fatalf("the store has %+v (%v)", p, err)
	}
	code, m = doAs(t, ts, tok, "GET", "/api/v1/pauses", "")
	if ps, _ := m["pauses"].([]any); code != 200 || len(ps) != 2 {
		t.Fatalf("list pauses: %d %v", code, m)
	}
	code, m = doAs(t, ts, tok, "GET", "/api/v1/services/web/policy", "")
	if p, _ := m["pause"].(map[string]any); code != 200 || m["follow"] != "channel" || p["reason"] != "INC-9: the database is failing over" || m["environment_pause"] == nil {
		t.Fatalf("policy of a paused service: %d %v", code, m)
	}
	if code, m = doAs(t, ts, tok, "DELETE", "/api/v1/services/web/pause", ""); code != 204 {
		t.Fatalf("resume web: %d %v", code, m)
	}
	if code, m = doAs(t, ts, tok, "DELETE", "/api/v1/services/web/pause", ""); code != 404 || !strings.Contains(m["message"].(string), "service web is not paused") {
		t.Fatalf("resume web again: %d %v", code, m)
	}
	if code, _ = doAs(t, ts, tok, "DELETE", "/api/v1/environments/prod/pause", ""); code != 204 {
		t.Fatalf("resume prod: %d", code)
	}
	var actions []string
	es, err := db.ListAudit(ctx, kiln.AuditFilter{Actor: "token:op"})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		actions = append(actions, e.Action+" "+e.Target)
	}
	if got := strings.Join(actions, ", "); got != "service.pause service web, environment.pause environment prod, service.resume service web, environment.resume environment prod" {
		t.Errorf("audit: %s", got)
	}

	// Set, as kiln service set: what is given changes, the rest stays.
	code, m = doAs(t, ts, tok, "PATCH", "/api/v1/services/web/policy", `{"window":"mon-fri 02:00-05:00 UTC","limit":"2/24h",
		"gate":{"prometheus":"http://127.0.0.1:9090","query":"sum(rate(errors[1m]))","max":0.01,"for_ns":30000000000},"bake_time_ns":2000000000,"follow":"none"}`)
	if code != 200 || m["follow"] != "none" || m["bake_time_ns"] != float64(2*time.Second) {
		t.Fatalf("set: %d %v", code, m)
	}
	svc, err := db.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if w := svc.Policy.Window; w == nil || w.String() != "mon,tue,wed,thu,fri 02:00-05:00 UTC" || svc.Policy.Limit.String() != "2/24h" ||
		svc.Policy.Gate == nil || svc.Policy.Gate.For != 30*time.Second || svc.Follow != kiln.FollowNone || svc.MaxSurge != 1 {
		t.Fatalf("stored: %+v %+v", svc, svc.Policy)
	}
	code, m = doAs(t, ts, tok, "PATCH", "/api/v1/services/web/policy", `{"gate":{"max":0.05},"remove":["window"]}`)
	if pol, _ := m["policy"].(map[string]any); code != 200 || pol["window"] != nil || pol["gate"].(map[string]any)["max"] != 0.05 || pol["gate"].(map[string]any)["query"] != "sum(rate(errors[1m]))" {
		t.Fatalf("change the gate's max, remove the window: %d %v", code, m)
	}
	if es, err := db.ListAudit(ctx, kiln.AuditFilter{Target: "service web"}); err != nil || es[len(es)-1].Action != "service.update" || es[len(es)-1].Actor != "token:op" {
		t.Errorf("no service.update audited: %v", err)
	}
}

// Bad input to the autopilot's routes names the API's field.
func TestAutopilotRoutesBadInput(t *testing.T) {
	ts, db, tok := rolloutEnv(t, false)
	cases := []struct {
		name, method, path, body string
		status                   int
		field, contains          string
	}{
		{"short reason", "POST", "/api/v1/services/web/pause", `{"reason":"no"}`, 400, "body.reason", "3 to 1024 bytes"},
		{"no reason", "POST", "/api/v1/environments/prod/pause", `{}`, 400, "", ""},
		{"unknown service", "POST", "/api/v1/services/nosuch/pause", `{"reason":"INC-9"}`, 404, "", "nosuch"},
		{"bad environment", "POST", "/api/v1/environments/Prod/pause", `{"reason":"INC-9"}`, 400, "path.environment", ""},
		{"resume what is not paused", "DELETE", "/api/v1/environments/prod/pause", "", 404, "", "environment prod is not paused"},
		{"policy of unknown service", "GET", "/api/v1/services/nosuch/policy", "", 404, "", "nosuch"},
		{"bad window", "PATCH", "/api/v1/services/web/policy", `{"window":"someday"}`, 400, "body.window", "DAYS HH:MM-HH:MM ZONE"},
		{"bad zone", "PATCH", "/api/v1/services/web/policy", `{"window":"daily 02:00-05:00 Mars/Olympus"}`, 400, "body.window", "Mars/Olympus"},
		{"bad limit", "PATCH", "/api/v1/services/web/policy", `{"limit":"2 per day"}`, 400, "body.limit", "N/DURATION"},
		{"bad gate", "PATCH", "/api/v1/services/web/policy", `{"gate":{"prometheus":"ftp://x","query":"up"}}`, 400, "body.gate.prometheus", "http://"},
		{"gate without query", "PATCH", "/api/v1/services/web/policy", `{"gate":{"prometheus":"http://127.0.0.1:9090"}}`, 400, "body.gate.query", "PromQL"},
		{"surge above replicas", "PATCH", "/api/v1/services/web/policy", `{"max_surge":5}`, 400, "body.max_surge", "replica count 1"},
		{"metrics not loopback", "PATCH", "/api/v1/services/web/policy", `{"metrics_listen":"10.0.0.1:9100"}`, 400, "body.metrics_listen", "loopback"},
		{"unknown follow", "PATCH", "/api/v1/services/web/policy", `{"follow":"sometimes"}`, 400, "", ""},
		{"unknown removal", "PATCH", "/api/v1/services/web/policy", `{"remove":["replicas"]}`, 400, "", ""},
		{"unknown field", "PATCH", "/api/v1/services/web/policy", `{"windows":"daily 02:00-05:00 UTC"}`, 400, "", ""},
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
	// Nothing was changed or recorded.
	ctx := context.Background()
	if ps, err := db.ListPauses(ctx); err != nil || len(ps) != 0 {
		t.Errorf("pauses: %+v %v", ps, err)
	}
	if svc, err := db.FindService(ctx, "web"); err != nil || !svc.Policy.IsZero() || svc.MaxSurge != 1 || svc.MetricsListen != "" {
		t.Errorf("web changed: %+v %v", svc, err)
	}
}

// With the follower's status (kiln serve gives it), a service's policy
// says what kiln serve does for it now, as `kiln service show` does.
func TestServicePolicyFollowStatus(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &rollout.Follower{Services: db, Rollouts: db, Channels: db, Pauses: db}
	cfg := api.Config{AuthCacheTTL: -1, FollowStatus: func(ctx context.Context, s *kiln.Service) (*api.FollowState, error) {
		st, err := f.Status(ctx, s)
		if err != nil {
			return nil, err
		}
		return &api.FollowState{State: st.State, Detail: st.Detail}, nil
	}}.WithStores(db)
	ts := httptest.NewServer(api.New(cfg))
	t.Cleanup(ts.Close)
	_, tok, err := db.CreateToken(ctx, &kiln.NewToken{Name: "viewer", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18989"}); err != nil {
		t.Fatal(err)
	}
	code, m := doAs(t, ts, tok, "GET", "/api/v1/services/web/policy", "")
	st, _ := m["status"].(map[string]any)
	if code != 200 || st["state"] != "no-channel" || !strings.Contains(st["detail"].(string), "prod") {
		t.Fatalf("policy: %d %v", code, m)
	}
	if err := db.Pause(kiln.WithActor(ctx, "local:ops"), &kiln.Pause{Kind: kiln.PauseService, Name: "web", Reason: "INC-9: failover"}); err != nil {
		t.Fatal(err)
	}
	code, m = doAs(t, ts, tok, "GET", "/api/v1/services/web/policy", "")
	if st, _ = m["status"].(map[string]any); code != 200 || st["state"] != "paused" || !strings.Contains(st["detail"].(string), "INC-9") {
		t.Fatalf("policy of the paused service: %d %v", code, m)
	}
}

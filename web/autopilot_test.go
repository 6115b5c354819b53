package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/web"
)

// The services page shows each service's follow mode, rollout policy
// (window, limit, batch, gate) and pause with who and why, and each
// environment's automatic refresh and pause; a service's page the same of
// it.
func TestServicesShowAutopilot(t *testing.T) {
	f := newFixture(t, fixtureOpts{autoRefresh: func(context.Context) ([]web.AutoRefresh, error) {
		return []web.AutoRefresh{{Environment: "prod", MinSeverity: "high", Include: []string{"no-dsa"}, Where: "/srv/estate/envs.kiln.hcl:3"}}, nil
	}})
	ctx := kiln.WithActor(context.Background(), "token:ops")
	web1 := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 4, Listen: "127.0.0.1:18097", MaxSurge: 2, BatchSize: 1,
		BakeTime: 30 * time.Second, Policy: kiln.RolloutPolicy{
			Window: &kiln.UpdateWindow{Days: []time.Weekday{time.Monday, time.Tuesday}, Start: "02:00", End: "05:00", Zone: "UTC"},
			Limit:  &kiln.RolloutLimit{Count: 2, Per: 24 * time.Hour},
			Gate:   &kiln.MetricGate{Prometheus: "http://127.0.0.1:9090", Query: "sum(rate(errors[1m]))", Max: 0.01, For: 30 * time.Second}}}
	api1 := &kiln.Service{Name: "api", Image: "appserver", Environment: "staging", Replicas: 1, Listen: "127.0.0.1:18096", Follow: kiln.FollowNone}
	for _, s := range []*kiln.Service{web1, api1} {
		if err := f.db.CreateService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.db.Pause(ctx, &kiln.Pause{Kind: kiln.PauseService, Name: "web", Reason: "INC-9: database failover"}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.Pause(ctx, &kiln.Pause{Kind: kiln.PauseEnvironment, Name: "staging", Reason: "CHG-42: release freeze"}); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/services")
	for _, p := range []struct {
		path string
		want []string
	}{
		{"/ui/services", []string{
			`<td class="follow">the prod channel</td>`,
			`<td class="policy">window mon,tue 02:00-05:00 UTC; at most 2 rollouts per 24h in prod; batches of 1, surge 2, bake 30s; gate sum(rate(errors[1m])) ≤ 0.01 for 30s (http://127.0.0.1:9090)</td>`,
			`<span class="paused">paused</span> by token:ops since`, `: INC-9: database failover (<code>kiln service resume web</code>)`,
			`<td class="follow">none (kiln rollout, or the autopilot&#39;s refresh)</td>`, `<td class="policy">any time; batches of 1, surge 1, bake 0s</td>`,
			`paused</span> with staging by token:ops since`,
			`<tr data-environment="prod">`, `on for advisories of high severity or worse (also no-dsa), <span class="hint">/srv/estate/envs.kiln.hcl:3</span>`,
			`<tr data-environment="staging">`, `<td class="refresh">off</td>`, `: CHG-42: release freeze (<code>kiln env resume staging</code>)`,
		}},
		{"/ui/services/web", []string{
			`<dd id="service-follow">the prod channel</dd>`,
			`<dd id="service-policy">window mon,tue 02:00-05:00 UTC; at most 2 rollouts per 24h in prod; batches of 1, surge 2, bake 30s; gate`,
			`<dd id="service-autopilot"><span class="paused">paused</span> by token:ops since`,
			`refreshed by kiln serve for advisories of high severity or worse`,
		}},
		{"/ui/services/api", []string{
			`<dd id="service-autopilot"><span class="paused">paused</span> with staging by token:ops`,
		}},
	} {
		resp, body := get(t, c, f, p.path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", p.path, resp.StatusCode, body)
		}
		checkPage(t, p.path, resp, body)
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: page lacks %q", p.path, w)
			}
		}
	}
	// Resumed, a service runs again; prod's row says so.
	if err := f.db.Resume(ctx, kiln.PauseService, "web"); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, c, f, "/ui/services"); !strings.Contains(body, `<td class="autopilot">running</td>`) {
		t.Errorf("after the resume the services page does not say web runs")
	}
}

// A service whose rollout the autopilot holds back outside its update
// window says so on the services page and its own page: waiting-window,
// whose refresh, to what, and when the window opens (the status is
// rollout.Follower's, as kiln serve wires it).
func TestServicesShowWaitingRollout(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) // a Monday
	f := newFixture(t, fixtureOpts{followStatus: func(db *store.DB) func(context.Context, *kiln.Service) (*api.FollowState, error) {
		fo := &rollout.Follower{Services: db, Rollouts: db, Channels: db, Pauses: db, Clock: func() time.Time { return now }}
		return func(ctx context.Context, s *kiln.Service) (*api.FollowState, error) {
			st, err := fo.Status(ctx, s)
			if err != nil {
				return nil, err
			}
			return &api.FollowState{State: st.State, Detail: st.Detail, Until: st.Until, NextWindow: st.NextWindow}, nil
		}
	}})
	ctx := kiln.WithActor(context.Background(), "token:ops")
	svc := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 2, Listen: "127.0.0.1:18097", Follow: kiln.FollowNone,
		Policy: kiln.RolloutPolicy{Window: &kiln.UpdateWindow{Days: []time.Weekday{time.Saturday}, Start: "02:00", End: "05:00", Zone: "UTC"}}}
	if err := f.db.CreateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if err := f.db.SetServicePending(ctx, "web", &kiln.PendingRollout{To: kiln.VersionRef{Image: "appserver", Number: 2},
		Why: "refresh for DSA-5900-1", By: "autopilot", Since: now.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/services")
	const detail = `the autopilot&#39;s refresh for DSA-5900-1 to appserver-2 (decided 2026-12-07T11:00:00Z) is waiting for its update window (sat 02:00-05:00 UTC), which opens 2026-12-12T02:00:00Z`
	for path, want := range map[string]string{
		"/ui/services":     `<td class="status"><span class="follow-waiting-window">waiting-window</span>: ` + detail + `</td>`,
		"/ui/services/web": `<dd id="service-status"><span class="follow-waiting-window">waiting-window</span>: ` + detail + `</dd>`,
	} {
		resp, body := get(t, c, f, path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
		checkPage(t, path, resp, body)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s: page lacks %q", path, want)
		}
	}
}

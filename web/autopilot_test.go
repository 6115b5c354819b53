package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
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

// With kiln serve's follower status, the services page says what the
// follower does for each service: one outside its update window waits for
// it until the window opens, one over its environment's rollout limit
// waits until the limit frees, one whose rollout runs is rolling out;
// the service's page gives the follower's sentence as well.
func TestServicesShowFollowerState(t *testing.T) {
	f := newFixture(t, fixtureOpts{follow: true})
	ctx := kiln.WithActor(context.Background(), "token:ops")
	now := time.Now().UTC()
	// A window on the day after tomorrow only: closed now.
	day := now.AddDate(0, 0, 2).Weekday()
	window := &kiln.UpdateWindow{Days: []time.Weekday{day}, Start: "02:00", End: "03:00", Zone: "UTC"}
	opens := window.Next(now)
	limit := kiln.RolloutPolicy{Limit: &kiln.RolloutLimit{Count: 1, Per: 24 * time.Hour}}
	for _, s := range []*kiln.Service{
		{Name: "web", Image: "appserver", Environment: "prod", Replicas: 2, Listen: "127.0.0.1:18095", Policy: kiln.RolloutPolicy{Window: window}},
		{Name: "api", Image: "appserver", Environment: "staging", Replicas: 1, Listen: "127.0.0.1:18094", Policy: limit},
		{Name: "jobs", Image: "appserver", Environment: "staging", Replicas: 1, Listen: "127.0.0.1:18093", Policy: limit},
		{Name: "batch", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18092", Follow: kiln.FollowNone},
		{Name: "nightly", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18091", Follow: kiln.FollowNone, Policy: kiln.RolloutPolicy{Window: window}},
	} {
		if err := f.db.CreateService(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	// nightly follows nothing, but the autopilot's refresh for an
	// advisory decided its rollout and holds it back for the window.
	decided := time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC)
	if err := f.db.SetServicePending(ctx, "nightly", &kiln.PendingRollout{To: kiln.VersionRef{Image: "appserver", Number: 2},
		Why: "refresh for DSA-5900-1", By: "autopilot", Since: decided}); err != nil {
		t.Fatal(err)
	}
	for _, env := range []string{"prod", "staging"} {
		if _, err := f.db.Promote(ctx, kiln.VersionRef{Image: "appserver", Number: 2}, env, "", "test"); err != nil {
			t.Fatal(err)
		}
	}
	// api's rollout to the staging channel's version runs: it counts
	// against staging's limit of 1 a day, so jobs waits a day after it.
	ro := &kiln.Rollout{Service: "api", To: kiln.VersionRef{Image: "appserver", Number: 2}}
	if err := f.db.CreateRollout(ctx, ro); err != nil {
		t.Fatal(err)
	}
	frees := ro.StartedAt.Add(24 * time.Hour)
	when := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/services")
	resp, body := get(t, c, f, "/ui/services")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /ui/services: %d\n%s", resp.StatusCode, body)
	}
	checkPage(t, "/ui/services", resp, body)
	row := func(name string) string {
		_, rest, ok := strings.Cut(body, `<tr data-service="`+name+`">`)
		if !ok {
			t.Fatalf("no row of service %s:\n%s", name, body)
		}
		r, _, _ := strings.Cut(rest, "</tr>")
		return r
	}
	for name, wants := range map[string][]string{
		"web": {`<span class="follow-state" data-state="waiting-window" title="appserver-2 is waiting for its update window (` + window.String() + `), which opens ` + opens.Format(time.RFC3339) + `">waiting for its update window until ` + when(opens) + `</span>`},
		"jobs": {`<span class="follow-state" data-state="waiting-limit" title="appserver-2 is waiting: 1 rollouts in staging within`,
			`the next may start ` + frees.Format(time.RFC3339) + `">waiting for the rollout limit until ` + when(frees) + `</span>`},
		"api": {`data-state="rolling-out" title="rollout ` + fmt.Sprint(ro.ID) + ` to appserver-2 is in progress (running)">rolling out</span>`},
		"nightly": {`<span class="follow-state" data-state="waiting-window" title="the autopilot&#39;s refresh for DSA-5900-1 to appserver-2 (decided 2026-12-07T11:00:00Z) is waiting for its update window (` +
			window.String() + `), which opens ` + opens.Format(time.RFC3339) + `">waiting for its update window until ` + when(opens) + `</span>`},
	} {
		r := row(name)
		for _, want := range wants {
			if !strings.Contains(r, want) {
				t.Errorf("service %s's row lacks %q:\n%s", name, want, r)
			}
		}
	}
	// A service that follows nothing says so once, in its Follows cell.
	if r := row("batch"); strings.Contains(r, "follow-state") || !strings.Contains(r, `<td class="follow">none (kiln rollout, or the autopilot&#39;s refresh)</td>`) {
		t.Errorf("service batch's row:\n%s", r)
	}

	_, body = get(t, c, f, "/ui/services/web")
	if want := `<dd id="service-follower" data-state="waiting-window">waiting for its update window until ` + when(opens) + `: appserver-2 is waiting for its update window`; !strings.Contains(body, want) {
		t.Errorf("GET /ui/services/web lacks %q", want)
	}
}

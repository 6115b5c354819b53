package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func TestServicesAndRollouts(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:alice")
		mkImage(t, e.DB, "appserver")
		v1 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})

		svc := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 4, Listen: "127.0.0.1:18080",
			Health: kiln.HealthCheck{Kind: kiln.HealthHTTP, Path: "/healthz"}, BakeTime: 2 * time.Second}
		if err := e.CreateService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		got := must[*kiln.Service](t)(e.FindService(ctx, "web"))
		if got.Health.String() != "http:/healthz" || got.MaxSurge != 1 || got.MinHealthyPercent != 100 || got.BakeTime != 2*time.Second || got.Port != 80 {
			t.Errorf("FindService = %+v", got)
		}
		dup := *svc
		dup.Name = "web2"
		wantContains(t, wantCode(t, e.CreateService(ctx, &dup), kiln.ECONFLICT), "127.0.0.1:18080", "service web")
		wantCode(t, e.CreateService(ctx, &kiln.Service{Name: "x", Image: "nosuch", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:1"}), kiln.ENOTFOUND)

		// Members: only entering or leaving active changes the generation.
		m := &kiln.Member{Service: "web", InstanceID: "web-a", Version: v1.Ref(), State: kiln.MemberLaunching}
		if err := e.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
		gen := func() int64 { return must[*kiln.Service](t)(e.FindService(ctx, "web")).Generation }
		if g := gen(); g != 0 {
			t.Errorf("generation after launching = %d, want 0", g)
		}
		m.State, m.Address = kiln.MemberActive, "127.0.0.1:40000"
		if err := e.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
		if g := gen(); g != 1 {
			t.Errorf("generation after active = %d, want 1", g)
		}
		wantCode(t, e.DeleteService(ctx, "web"), kiln.ECONFLICT)
		if err := e.DeleteMember(ctx, "web", "web-a"); err != nil {
			t.Fatal(err)
		}
		if g := gen(); g != 2 {
			t.Errorf("generation after delete = %d, want 2", g)
		}

		// One rollout at a time per service.
		r := &kiln.Rollout{Service: "web", To: v1.Ref()}
		if err := e.CreateRollout(ctx, r); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.CreateRollout(ctx, &kiln.Rollout{Service: "web", To: v1.Ref()}), kiln.ECONFLICT)
		r.Batch, r.BatchTimes = 1, []time.Duration{3 * time.Second}
		if err := e.UpdateRollout(ctx, r); err != nil {
			t.Fatal(err)
		}
		act := must[*kiln.Rollout](t)(e.ActiveRollout(ctx, "web"))
		if act.ID != r.ID || act.Batch != 1 || len(act.BatchTimes) != 1 || act.BatchTimes[0] != 3*time.Second || act.StartedBy != "local:alice" {
			t.Errorf("ActiveRollout = %+v", act)
		}
		r.State, r.Reason = kiln.RolloutSucceeded, "done"
		if err := e.UpdateRollout(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := e.CreateRollout(ctx, &kiln.Rollout{Service: "web", To: v1.Ref()}); err != nil {
			t.Errorf("new rollout after the last one ended: %v", err)
		}

		// Break-glass taints the instance and is audited.
		if err := e.CreateInstance(ctx, &kiln.Instance{ID: "web-b", Version: v1.Ref(), Environment: "prod"}); err != nil {
			t.Fatal(err)
		}
		_, err := e.BreakGlass(ctx, &kiln.BreakGlass{InstanceID: "web-b"})
		wantContains(t, wantCode(t, err, kiln.EINVALID), "--reason")
		inst := must[*kiln.Instance](t)(e.BreakGlass(ctx, &kiln.BreakGlass{InstanceID: "web-b", Reason: "INC-7: look at the queue"}))
		if !inst.Tainted || !must[*kiln.Instance](t)(e.FindInstance(ctx, "web-b")).Tainted {
			t.Error("instance not tainted after break-glass")
		}
		bg := must[[]*kiln.BreakGlass](t)(e.ListBreakGlass(ctx, "web-b"))
		if len(bg) != 1 || bg[0].Actor != "local:alice" || bg[0].Reason != "INC-7: look at the queue" {
			t.Errorf("ListBreakGlass = %+v", bg)
		}
		var actions []string
		for _, a := range must[[]*kiln.AuditEntry](t)(e.ListAudit(ctx, kiln.AuditFilter{Target: "instance web-b"})) {
			actions = append(actions, a.Action)
		}
		if strings.Join(actions, " ") != "instance.register instance.break-glass" && strings.Join(actions, " ") != "instance.break-glass instance.register" {
			t.Errorf("audit actions for web-b = %v, want its registration and one break-glass", actions)
		}
	})
}

// A service's follow mode and policy are kept and replaced; the followed
// version is recorded apart.
func TestServicePolicy(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:alice")
		mkImage(t, e.DB, "appserver")
		svc := &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 2, Listen: "127.0.0.1:18080"}
		if err := e.CreateService(ctx, svc); err != nil {
			t.Fatal(err)
		}
		got := must[*kiln.Service](t)(e.FindService(ctx, "web"))
		if got.Follow != kiln.FollowChannel || !got.Policy.IsZero() || got.MetricsListen != "" {
			t.Errorf("new service: follow %q, policy %+v; want channel and no policy", got.Follow, got.Policy)
		}
		w, err := kiln.ParseUpdateWindow("window", "mon-fri 02:00-05:00 UTC")
		if err != nil {
			t.Fatal(err)
		}
		got.Follow, got.MetricsListen, got.Estate, got.MaxSurge = kiln.FollowNone, "127.0.0.1:19080", "ops", 2
		got.Policy = kiln.RolloutPolicy{Window: w, Limit: &kiln.RolloutLimit{Count: 2, Per: 24 * time.Hour},
			Gate: &kiln.MetricGate{Prometheus: "http://127.0.0.1:9090", Query: "up", Max: 0.01, For: 30 * time.Second}}
		if err := e.UpdateService(ctx, got); err != nil {
			t.Fatal(err)
		}
		if err := e.SetServiceFollowed(ctx, "web", kiln.VersionRef{Image: "appserver", Number: 3}); err != nil {
			t.Fatal(err)
		}
		again := must[*kiln.Service](t)(e.FindService(ctx, "web"))
		if again.Follow != kiln.FollowNone || again.MetricsListen != "127.0.0.1:19080" || again.Estate != "ops" || again.MaxSurge != 2 ||
			again.Policy.Window.String() != w.String() || again.Policy.Limit.String() != "2/24h" || again.Policy.Gate.For != 30*time.Second ||
			again.Followed.Number != 3 {
			t.Errorf("after update: %+v policy %+v", again, again.Policy)
		}
		bad := *again
		bad.Follow = "sometimes"
		wantCode(t, e.UpdateService(ctx, &bad), kiln.EINVALID)
		bad = *again
		bad.Name = "nosuch"
		wantCode(t, e.UpdateService(ctx, &bad), kiln.ENOTFOUND)
	})
}

// TestServicePending: the autopilot's held-back rollout is kept with the
// service, survives an update of its settings, and is cleared by nil.
func TestServicePending(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		if err := e.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 2, Listen: "127.0.0.1:18080"}); err != nil {
			t.Fatal(err)
		}
		if got := must[*kiln.Service](t)(e.FindService(ctx, "web")); got.Pending != nil {
			t.Fatalf("new service has a pending rollout: %+v", got.Pending)
		}
		since := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
		p := &kiln.PendingRollout{To: kiln.VersionRef{Image: "appserver", Number: 2}, Why: "refresh for DSA-1", By: "autopilot", Since: since}
		if err := e.SetServicePending(ctx, "web", p); err != nil {
			t.Fatal(err)
		}
		got := must[*kiln.Service](t)(e.FindService(ctx, "web"))
		got.MaxSurge = 2
		if err := e.UpdateService(ctx, got); err != nil {
			t.Fatal(err)
		}
		all := must[[]*kiln.Service](t)(e.ListServices(ctx))
		if q := all[0].Pending; q == nil || q.To != p.To || q.Why != p.Why || q.By != p.By || !q.Since.Equal(since) {
			t.Fatalf("pending rollout read back: %+v; want %+v", q, p)
		}
		if err := e.SetServicePending(ctx, "web", nil); err != nil {
			t.Fatal(err)
		}
		if got := must[*kiln.Service](t)(e.FindService(ctx, "web")); got.Pending != nil {
			t.Errorf("cleared pending rollout: %+v", got.Pending)
		}
		wantCode(t, e.SetServicePending(ctx, "nosuch", p), kiln.ENOTFOUND)
	})
}

// A rollout keeps the configurations it names by digest (once, however
// many rollouts name them), and FindLaunchConfig returns them.
func TestRolloutKeepsLaunchConfigs(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:alice")
		mkImage(t, e.DB, "appserver")
		v1 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		if err := e.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18081"}); err != nil {
			t.Fatal(err)
		}
		rec := &kiln.LaunchConfigRecord{Digest: "sha256:aa", Source: "estate:/e env prod",
			Files: []kiln.LaunchConfigFile{{Name: "banner.txt", Data: []byte("hello\n")}}, Settings: map[string]string{"LOG": "debug"},
			Secrets: []kiln.SecretRef{{Name: "db", File: "/etc/kiln/secrets/db"}}, Agent: &kiln.AgentRef{Server: "http://127.0.0.1:8080", TokenEnv: "TOK"}}
		for i := range 2 {
			r := &kiln.Rollout{Service: "web", To: v1.Ref(), FromConfig: "sha256:00", ToConfig: rec.Digest, Configs: []*kiln.LaunchConfigRecord{rec}}
			if err := e.CreateRollout(ctx, r); err != nil {
				t.Fatalf("rollout %d: %v", i, err)
			}
			got := must[*kiln.Rollout](t)(e.FindRollout(ctx, r.ID))
			if got.FromConfig != "sha256:00" || got.ToConfig != rec.Digest {
				t.Errorf("FindRollout = %+v", got)
			}
			r.State = kiln.RolloutSucceeded
			if err := e.UpdateRollout(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		got := must[*kiln.LaunchConfigRecord](t)(e.FindLaunchConfig(ctx, rec.Digest))
		if got.Source != rec.Source || string(got.Files[0].Data) != "hello\n" || got.Settings["LOG"] != "debug" || got.Secrets[0].File != "/etc/kiln/secrets/db" || got.Agent.TokenEnv != "TOK" {
			t.Errorf("FindLaunchConfig = %+v", got)
		}
		_, err := e.FindLaunchConfig(ctx, "sha256:00")
		wantCode(t, err, kiln.ENOTFOUND)
	})
}

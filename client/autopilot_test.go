package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
)

// Through the API, pauses and a service's policy are what the database
// keeps: `kiln service|env pause|resume`, `kiln env pauses` and `kiln
// service set` work with --server.
func TestAutopilotOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	c, err := client.New(url, toks[kiln.RoleOperator], nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	if err := c.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 3, Listen: "127.0.0.1:18990"}); err != nil {
		t.Fatal(err)
	}
	p := &kiln.Pause{Kind: kiln.PauseService, Name: "web", Reason: "INC-9: failover"}
	if err := c.Pause(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := c.Pause(ctx, &kiln.Pause{Kind: kiln.PauseEnvironment, Name: "prod", Reason: "CHG-42: freeze"}); err != nil {
		t.Fatal(err)
	}
	if p.Actor != "token:operator" || p.At.IsZero() {
		t.Errorf("pause as recorded: %+v", p)
	}
	want, err := db.ListPauses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ListPauses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" || len(got) != 2 {
		t.Errorf("ListPauses (-db +client):\n%s", diff)
	}
	if f, err := c.FindPause(ctx, kiln.PauseEnvironment, "prod"); err != nil || f.Reason != "CHG-42: freeze" {
		t.Errorf("FindPause prod: %+v %v", f, err)
	}
	if err := c.Resume(ctx, kiln.PauseService, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.FindPause(ctx, kiln.PauseService, "web"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("FindPause after resume: %v", err)
	}
	if err := c.Resume(ctx, kiln.PauseService, "web"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("resume twice: %v", err)
	}
	if err := c.Pause(ctx, &kiln.Pause{Kind: kiln.PauseService, Name: "web", Reason: "x"}); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("short reason: %v", err)
	}

	// kiln service set: the policy set, then taken away again.
	svc, err := c.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	svc.Follow, svc.BatchSize, svc.BakeTime, svc.MetricsListen = kiln.FollowNone, 2, 3*time.Second, "127.0.0.1:19090"
	svc.Policy = kiln.RolloutPolicy{
		Window: &kiln.UpdateWindow{Days: []time.Weekday{time.Sunday, time.Saturday}, Start: "22:00", End: "04:00", Zone: "Europe/Berlin"},
		Limit:  &kiln.RolloutLimit{Count: 1, Per: 12 * time.Hour},
		Gate:   &kiln.MetricGate{Prometheus: "http://127.0.0.1:9090", Query: "up", Max: 0.5, For: time.Minute}}
	if err := c.UpdateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	stored, err := db.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(svc, stored, cmpopts.IgnoreFields(kiln.Service{}, "UpdatedAt")); diff != "" {
		t.Errorf("UpdateService (-sent +stored):\n%s", diff)
	}
	svc.Policy, svc.MetricsListen = kiln.RolloutPolicy{}, ""
	if err := c.UpdateService(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if stored, err = db.FindService(ctx, "web"); err != nil || !stored.Policy.IsZero() || stored.MetricsListen != "" || stored.BatchSize != 2 {
		t.Errorf("after removing the policy: %+v %v", stored, err)
	}
	svc.MaxSurge = 9
	if err := c.UpdateService(ctx, svc); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("max surge above the replicas: %v", err)
	}
}

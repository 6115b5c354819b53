package client_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
)

// Cancelling runs, the promotion history and webhooks go through the API;
// the worker's side of the run store still refuses.
func TestPipelineOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	ctx := context.Background()
	admin, _ := client.New(url, toks[kiln.RoleAdmin], nil)
	operator, _ := client.New(url, toks[kiln.RoleOperator], nil)
	builder, _ := client.New(url, toks[kiln.RoleBuilder], nil)
	viewer, _ := client.New(url, toks[kiln.RoleViewer], nil)

	run, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: "web", Estate: "/srv/estate", Trigger: "manual",
		Stages: []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := builder.CancelRun(ctx, run.ID, ""); kiln.ErrorCode(err) != kiln.EFORBIDDEN || !strings.Contains(err.Error(), "operator") {
		t.Errorf("builder cancelling: %v", err)
	}
	got, err := operator.CancelRun(ctx, run.ID, "ignored: the server names the token")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != kiln.RunCancelled || got.Reason != "cancelled by token:operator" {
		t.Errorf("cancelled run: %+v", got)
	}
	if _, err := operator.CancelRun(ctx, run.ID, ""); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("cancelling twice: %v", err)
	}
	if _, err := operator.CancelRun(ctx, 99, ""); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("cancelling run 99: %v", err)
	}

	if err := operator.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := operator.CreateVersion(ctx, &kiln.NewVersion{Image: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := operator.SetStatus(ctx, v.Ref(), st, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := operator.Promote(ctx, v.Ref(), "dev", "", "first"); err != nil {
		t.Fatal(err)
	}
	if _, err := operator.Promote(ctx, v.Ref(), "staging", "dev", ""); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		image, env string
		limit      int
	}{{"", "", 50}, {"web", "dev", 0}, {"", "", 1}, {"nope", "", 10}, {"", "", 1 << 20}} {
		remote, err := viewer.Promotions(ctx, q.image, q.env, q.limit)
		if err != nil {
			t.Fatal(err)
		}
		local, _ := db.Promotions(ctx, q.image, q.env, q.limit)
		if d := cmp.Diff(local, remote); d != "" {
			t.Errorf("promotions %+v over HTTP differ (-store +http):\n%s", q, d)
		}
	}

	secret := strings.Repeat("0123456789abcdef", 2)
	w := &kiln.Webhook{URL: "https://ci.example.com/hooks/kiln", Secret: secret, Events: []kiln.WebhookEvent{kiln.EventPromoted}}
	if err := operator.AddWebhook(ctx, w); kiln.ErrorCode(err) != kiln.EFORBIDDEN || !strings.Contains(err.Error(), "admin") {
		t.Errorf("operator adding a webhook: %v", err)
	}
	if err := admin.AddWebhook(ctx, w); err != nil {
		t.Fatal(err)
	}
	if w.ID == 0 || w.CreatedBy != "token:admin" || w.Secret != secret {
		t.Errorf("webhook as answered: %+v", w)
	}
	stored, _ := db.ListWebhooks(ctx)
	if len(stored) != 1 || stored[0].Secret != secret {
		t.Fatalf("stored webhooks: %+v", stored)
	}
	listed, err := admin.ListWebhooks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stored[0].Secret, stored[0].URL = "", "" // never sent back
	if d := cmp.Diff(stored, listed); d != "" {
		t.Errorf("webhooks over HTTP differ (-store +http):\n%s", d)
	}
	if err := admin.AddWebhook(ctx, &kiln.Webhook{URL: "https://x.example", Secret: "short", Events: w.Events}); kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != "secret" {
		t.Errorf("short secret: %v (field %q)", err, kiln.ErrorField(err))
	}
	if err := admin.DeleteWebhook(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteWebhook(ctx, w.ID); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("deleting twice: %v", err)
	}

	// The worker's side stays on the server.
	if _, err := admin.ClaimRun(ctx, "laptop:1"); err == nil || !strings.Contains(err.Error(), "kiln serve") {
		t.Errorf("claiming a run through the API: %v", err)
	}
	if _, err := admin.Deliveries(ctx, 0, 10); err == nil || !strings.Contains(err.Error(), "without --server") {
		t.Errorf("delivery log through the API: %v", err)
	}
}

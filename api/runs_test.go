package api_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/packer"
)

// A queued run is cancelled once, in the token's name; promotions are
// listed newest first and filtered.
func TestCancelRunAndPromotionsOverHTTP(t *testing.T) {
	ts, db := storeServer(t)
	ctx := context.Background()
	run, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: "web", Estate: "/srv/estate", Trigger: "manual",
		Stages: []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, env := range []string{"dev", "staging"} {
		prev := map[string]string{"staging": "dev"}[env]
		if _, err := db.Promote(ctx, v.Ref(), env, prev, "go"); err != nil {
			t.Fatal(err)
		}
	}
	runCases(t, ts, []apiCase{
		{name: "cancel", method: "POST", path: runURL(run.ID) + "/cancel", status: 200, check: func(t *testing.T, m map[string]any) {
			if m["status"] != string(kiln.RunCancelled) || m["reason"] != "cancelled by token:test-admin" {
				t.Errorf("cancelled run: %v", m)
			}
		}},
		{name: "cancel again", method: "POST", path: runURL(run.ID) + "/cancel", status: 409, code: "conflict", says: "cancelled"},
		{name: "cancel unknown", method: "POST", path: "/api/v1/runs/99/cancel", status: 404, code: "not_found", says: "99"},
		{name: "cancel bad id", method: "POST", path: "/api/v1/runs/0/cancel", status: 400, code: "invalid", field: "path.id"},
		{name: "promotions", method: "GET", path: "/api/v1/promotions", status: 200, check: func(t *testing.T, m map[string]any) {
			ps := list(t, m, "promotions")
			if len(ps) != 2 || ps[0]["environment"] != "staging" || ps[1]["environment"] != "dev" || ps[0]["reason"] != "go" {
				t.Errorf("promotions: %v", ps)
			}
		}},
		{name: "promotions filtered", method: "GET", path: "/api/v1/promotions?image=web&env=dev&limit=5", status: 200, check: func(t *testing.T, m map[string]any) {
			if ps := list(t, m, "promotions"); len(ps) != 1 || ps[0]["environment"] != "dev" {
				t.Errorf("promotions to dev: %v", ps)
			}
		}},
		{name: "promotions limited", method: "GET", path: "/api/v1/promotions?limit=1", status: 200, check: func(t *testing.T, m map[string]any) {
			if ps := list(t, m, "promotions"); len(ps) != 1 {
				t.Errorf("one promotion: %v", ps)
			}
		}},
		{name: "promotions of nothing", method: "GET", path: "/api/v1/promotions?image=nope", status: 200, check: func(t *testing.T, m map[string]any) {
			if ps := list(t, m, "promotions"); len(ps) != 0 {
				t.Errorf("promotions of nope: %v", ps)
			}
		}},
		{name: "promotions bad limit", method: "GET", path: "/api/v1/promotions?limit=-1", status: 400, code: "invalid", field: "query.limit"},
		{name: "promotions huge limit", method: "GET", path: "/api/v1/promotions?limit=" + strings.Repeat("9", 6), status: 400, code: "invalid", field: "query.limit"},
	})
}

func runURL(id int64) string { return "/api/v1/runs/" + strconv.FormatInt(id, 10) }

// The channel route the Terraform example in docs/supply-chain.md reads:
// the normal answer carries the version's provenance.artifact.ref (a
// Packer import's multi-region AMI list, split the way the example's
// locals split it), the version's name, status and tags; a channel whose
// version is revoked answers the newest version it held that is not, with
// channel.revoked naming the skipped one; with none left it answers 409
// (the example's postcondition fails) naming the revocation and the
// promote to run. A viewer token is enough.
func TestGetChannelForTerraform(t *testing.T) {
	ts, db := storeServer(t)
	ctx := kiln.WithActor(context.Background(), "local:test")
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	refs := []string{
		packer.ArtifactRef("amazon-ebs", "us-east-1:ami-0aaa1,eu-west-1:ami-0bbb1"),
		packer.ArtifactRef("amazon-ebs", "us-east-1:ami-0aaa2,eu-west-1:ami-0bbb2"),
	}
	for _, ref := range refs {
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Tags: kiln.Tags{"team": "edge"},
			Provenance: kiln.Provenance{Method: kiln.MethodExternal, Artifact: &kiln.Artifact{Ref: ref}, BuiltBy: "packer"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Promote(ctx, v.Ref(), "prod", "", "release"); err != nil {
			t.Fatal(err)
		}
	}
	_, viewer, err := db.CreateToken(ctx, &kiln.NewToken{Name: "terraform", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	get := func(t *testing.T) (int, map[string]any) {
		t.Helper()
		return doAs(t, ts, viewer, "GET", "/api/v1/images/web/channels/prod", "")
	}
	// amis is what the example's locals compute from the answer.
	amis := func(t *testing.T, m map[string]any) map[string]string {
		t.Helper()
		v, _ := m["version"].(map[string]any)
		p, _ := v["provenance"].(map[string]any)
		a, _ := p["artifact"].(map[string]any)
		ref, ok := a["ref"].(string)
		if !ok {
			t.Fatalf("no version.provenance.artifact.ref in %v", m)
		}
		out := map[string]string{}
		for pair := range strings.SplitSeq(strings.TrimPrefix(ref, "packer:amazon-ebs:"), ",") {
			region, ami, _ := strings.Cut(pair, ":")
			out[region] = ami
		}
		return out
	}

	code, m := get(t)
	if code != 200 {
		t.Fatalf("GET channel: %d %v", code, m)
	}
	c, _ := m["channel"].(map[string]any)
	v, _ := m["version"].(map[string]any)
	if c["name"] != "web-2" || c["environment"] != "prod" || c["revoked"] != nil {
		t.Errorf("channel %v; want web-2 in prod, nothing revoked", c)
	}
	tags, _ := v["tags"].(map[string]any)
	if v["name"] != "web-2" || v["status"] != "ready" || tags["team"] != "edge" {
		t.Errorf("version %v; want web-2, ready, tag team=edge", v)
	}
	if got := amis(t, m); got["us-east-1"] != "ami-0aaa2" || got["eu-west-1"] != "ami-0bbb2" {
		t.Errorf("AMIs from version.provenance.artifact.ref: %v; want web-2's", got)
	}

	if _, err := db.Revoke(kiln.WithActor(ctx, "token:ops"), kiln.VersionRef{Image: "web", Number: 2}, "CVE-2026-1234"); err != nil {
		t.Fatal(err)
	}
	code, m = get(t)
	if code != 200 {
		t.Fatalf("GET channel on a revoked version: %d %v; want the fallback", code, m)
	}
	c, _ = m["channel"].(map[string]any)
	v, _ = m["version"].(map[string]any)
	revoked, _ := c["revoked"].(map[string]any)
	if c["name"] != "web-1" || v["name"] != "web-1" || revoked["image"] != "web" || revoked["number"] != float64(2) {
		t.Errorf("fallback: channel %v, version %v; want web-1 with channel.revoked = web 2", c, v["name"])
	}
	if got := amis(t, m); got["us-east-1"] != "ami-0aaa1" {
		t.Errorf("fallback AMIs %v; want web-1's", got)
	}

	if _, err := db.Revoke(ctx, kiln.VersionRef{Image: "web", Number: 1}, "end of support"); err != nil {
		t.Fatal(err)
	}
	code, m = get(t)
	msg, _ := m["message"].(string)
	if code != 409 || m["code"] != kiln.ECONFLICT || !strings.Contains(msg, "web-2, which is revoked") || !strings.Contains(msg, "kiln promote web-N --to prod") {
		t.Errorf("GET channel with nothing left to fall back to: %d %v; want 409 naming the revocation and the promote to run", code, m)
	}
	if m["version"] != nil || m["channel"] != nil {
		t.Errorf("a refused channel still answers a version: %v", m)
	}
	runCases(t, ts, []apiCase{
		{name: "no such channel", method: "GET", path: "/api/v1/images/web/channels/staging", status: 404, code: kiln.ENOTFOUND, says: "kiln promote web-N --to staging"},
	})
}

package api_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
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

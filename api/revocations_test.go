package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
)

// Revoke, scheduled revocation, cancel and restore over the API: the
// revocation takes the versions built on the revoked one with it (each
// naming the ancestor), every change is audited with the caller's token,
// a viewer is refused, and the Go client (what `kiln --server` uses) says
// the same.
func TestRevocationRoutes(t *testing.T) {
	ts, db := storeServer(t)
	ctx := kiln.WithActor(context.Background(), "local:test")
	var base *kiln.VersionRef
	for _, img := range []string{"basic-linux", "appserver", "worker"} {
		if err := db.CreateImage(ctx, &kiln.Image{Name: img}); err != nil {
			t.Fatal(err)
		}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: img, Provenance: kiln.Provenance{Method: kiln.MethodFresh, Base: base}})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
				t.Fatal(err)
			}
		}
		r := v.Ref()
		base = &r
	}
	_, viewer, err := db.CreateToken(ctx, &kiln.NewToken{Name: "viewer", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	_, operator, err := db.CreateToken(ctx, &kiln.NewToken{Name: "ops", Role: kiln.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := doAs(t, ts, viewer, "POST", "/api/v1/images/basic-linux/versions/1/revoke", `{"reason":"x"}`); code != 403 {
		t.Fatalf("viewer revokes: %d, want 403", code)
	}
	runCases(t, ts, []apiCase{
		{name: "no reason", method: "POST", path: "/api/v1/images/basic-linux/versions/1/revoke", body: `{}`, status: 400, code: kiln.EINVALID, field: "body", says: "reason"},
		{name: "unknown version", method: "POST", path: "/api/v1/images/basic-linux/versions/9/revoke", body: `{"reason":"x"}`, status: 404, code: kiln.ENOTFOUND, says: "basic-linux-9"},
		{name: "schedule in the past", method: "POST", path: "/api/v1/images/appserver/versions/1/revoke", body: `{"reason":"x","at":"2001-01-01T00:00:00Z"}`, status: 400, code: kiln.EINVALID, field: "body.at", says: "not in the future"},
		{name: "cancel nothing", method: "DELETE", path: "/api/v1/images/appserver/versions/1/revoke", status: 404, code: kiln.ENOTFOUND},
	})

	c, err := client.New(ts.URL, operator, nil, client.AllowHTTP(true))
	if err != nil {
		t.Fatal(err)
	}
	app := kiln.VersionRef{Image: "appserver", Number: 1}
	at := time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := c.ScheduleRevocation(ctx, app, at, "end of support")
	if err != nil || !s.At.Equal(at) || s.Actor != "token:ops" {
		t.Fatalf("schedule: %+v %v", s, err)
	}
	ss, err := c.ScheduledRevocations(ctx)
	if err != nil || len(ss) != 1 || ss[0].Version != app || ss[0].Reason != "end of support" {
		t.Fatalf("scheduled: %+v %v", ss, err)
	}
	if err := c.CancelScheduledRevocation(ctx, app); err != nil {
		t.Fatal(err)
	}
	if ss, err := c.ScheduledRevocations(ctx); err != nil || len(ss) != 0 {
		t.Fatalf("scheduled after cancel: %+v %v", ss, err)
	}

	bl := kiln.VersionRef{Image: "basic-linux", Number: 1}
	revs, err := c.Revoke(ctx, bl, "CVE-2026-3 in openssl")
	if err != nil || len(revs) != 3 {
		t.Fatalf("revoke: %+v %v; want 3 revocations", revs, err)
	}
	if revs[0].Version != bl || revs[0].Through != nil || revs[0].Actor != "token:ops" || revs[0].Reason != "CVE-2026-3 in openssl" {
		t.Errorf("own revocation %+v", revs[0])
	}
	for _, r := range revs[1:] {
		if r.Through == nil || *r.Through != bl {
			t.Errorf("%s revoked through %v, want %s", r.Version, r.Through, bl)
		}
	}
	if _, err := c.Revoke(ctx, bl, "again"); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("revoke again: %v, want ECONFLICT", err)
	}
	if _, err := c.Restore(ctx, app, "x"); kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "basic-linux-1") {
		t.Errorf("restore of a version revoked through its base: %v; want ECONFLICT naming basic-linux-1", err)
	}
	restored, err := c.Restore(ctx, bl, "false alarm")
	if err != nil || len(restored) != 3 {
		t.Fatalf("restore: %v %v", restored, err)
	}

	es, err := db.ListAudit(context.Background(), kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		if e.Actor == "token:ops" && e.Result == kiln.AuditOK {
			seen[e.Action] = true
		}
	}
	for _, a := range []string{"version.status", "version.revoke.ancestry", "version.revoke.schedule", "version.revoke.cancel", "version.restore"} {
		if !seen[a] {
			t.Errorf("no audit entry %s by token:ops; have %v", a, seen)
		}
	}
}

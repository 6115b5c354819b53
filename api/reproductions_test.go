package api_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// A version's rebuild checks over the API: newest first, with the result,
// the rebuilt digest and the differing files (path, what, step); a version
// never checked says unchecked, and whether it can be; a viewer may read,
// an anonymous caller may not; the route is in the OpenAPI document.
func TestReproductionRoutes(t *testing.T) {
	ts, db := storeServer(t)
	ctx := kiln.WithActor(context.Background(), "local:alice")
	if err := db.CreateImage(ctx, &kiln.Image{Name: "basic-linux"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{Method: kiln.MethodFresh, SourceDateEpoch: 1765065600, SourceDateEpochFrom: "git commit 3c1f"}})
	if err != nil {
		t.Fatal(err)
	}
	old, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{Method: kiln.MethodFresh}})
	if err != nil {
		t.Fatal(err)
	}
	d1, d2 := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	if err := db.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Digest: d2, Summary: "1 files differ", Elapsed: 41 * time.Second,
		DifferingFiles: 1, Files: []kiln.DifferingFile{{Path: "/etc/stamp", What: []string{"content"}, Step: "shell (stamp.kiln.hcl:5)"}}}); err != nil {
		t.Fatal(err)
	}
	_, viewer, err := db.CreateToken(ctx, &kiln.NewToken{Name: "viewer", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/images/basic-linux/versions/1/reproductions"
	code, m := doAs(t, ts, viewer, "GET", path, "")
	if code != 200 || m["reproduced"] != "different" || m["checkable"] != true {
		t.Fatalf("GET %s as a viewer: %d %v", path, code, m)
	}
	rs := m["reproductions"].([]any)
	r0 := rs[0].(map[string]any)
	files := r0["files"].([]any)
	f0 := files[0].(map[string]any)
	if len(rs) != 1 || r0["identical"] != false || r0["digest"] != d2 || r0["differing_files"] != float64(1) || r0["actor"] != "local:alice" ||
		len(files) != 1 || f0["path"] != "/etc/stamp" || f0["step"] != "shell (stamp.kiln.hcl:5)" || f0["what"].([]any)[0] != "content" {
		t.Errorf("the check: %v", r0)
	}
	if _, ok := r0["attestation"]; ok {
		t.Errorf("an unsigned check names an attestation: %v", r0)
	}
	// A signed check (kiln version rebuild --check with kiln's key) names
	// the attachment keeping its in-toto statement, served by the
	// attachment route.
	signed := &kiln.Reproduction{Version: v.Ref(), Identical: true, Digest: d1, Seal: func(r *kiln.Reproduction) (*kiln.Attachment, error) {
		return &kiln.Attachment{Name: r.AttestationName(), MediaType: "application/vnd.dsse.envelope.v1+json", Data: []byte(`{"payloadType":"application/vnd.in-toto+json"}`)}, nil
	}}
	if err := db.RecordReproduction(ctx, signed); err != nil {
		t.Fatal(err)
	}
	code, m = doAs(t, ts, viewer, "GET", path, "")
	if rs := m["reproductions"].([]any); code != 200 || m["reproduced"] != "identical" || len(rs) != 2 || rs[0].(map[string]any)["digest"] != d1 ||
		rs[0].(map[string]any)["attestation"] != signed.AttestationName() {
		t.Errorf("after a signed identical check: %d %v; want attestation %s", code, m, signed.AttestationName())
	}
	if code, a := doAs(t, ts, viewer, "GET", "/api/v1/images/basic-linux/versions/1/attachments/"+signed.AttestationName(), ""); code != 200 || a["media_type"] != "application/vnd.dsse.envelope.v1+json" {
		t.Errorf("GET the signed check's attachment: %d %v", code, a)
	}
	if code, _ := doAs(t, ts, "", "GET", path, ""); code != 401 {
		t.Errorf("anonymous GET: %d, want 401", code)
	}
	runCases(t, ts, []apiCase{
		{name: "never checked, not checkable", method: "GET", path: "/api/v1/images/basic-linux/versions/2/reproductions", status: 200, check: func(t *testing.T, m map[string]any) {
			if m["reproduced"] != "unchecked" || m["checkable"] != false || len(m["reproductions"].([]any)) != 0 {
				t.Errorf("%s: %v", old.Name, m)
			}
		}},
		{name: "unknown version", method: "GET", path: "/api/v1/images/basic-linux/versions/9/reproductions", status: 404, code: kiln.ENOTFOUND, says: "basic-linux-9"},
		{name: "bad number", method: "GET", path: "/api/v1/images/basic-linux/versions/0/reproductions", status: 400, code: kiln.EINVALID},
	})
	code, doc := doAs(t, ts, "", "GET", "/openapi.json", "")
	paths, _ := doc["paths"].(map[string]any)
	op, _ := paths["/api/v1/images/{image}/versions/{number}/reproductions"].(map[string]any)
	get, _ := op["get"].(map[string]any)
	if code != 200 || get["operationId"] != "list-version-reproductions" || get["x-kiln-role"] != "viewer" {
		t.Errorf("the OpenAPI document's reproductions route: %d %v", code, op)
	}
}

// A channel rollback onto a revoked version over the API: 409 naming the
// revocation and the next candidate; "force": true rolls back and is
// audited with the caller.
func TestRollbackOntoRevokedRoute(t *testing.T) {
	ts, db := storeServer(t)
	ctx := kiln.WithActor(context.Background(), "local:test")
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Method: kiln.MethodFresh}})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Promote(ctx, v.Ref(), "dev", "", ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Revoke(ctx, kiln.VersionRef{Image: "appserver", Number: 2}, "CVE-2026-1234"); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/images/appserver/channels/dev/rollback"
	runCases(t, ts, []apiCase{
		{name: "onto a revoked version", method: "POST", path: path, body: `{"reason":"bad"}`, status: 409, code: kiln.ECONFLICT, says: "would land on appserver-2, which is revoked (CVE-2026-1234, by local:test at "},
		{name: "forced", method: "POST", path: path, body: `{"reason":"knowingly","force":true}`, status: 200, check: func(t *testing.T, m map[string]any) {
			if m["number"] != float64(2) || m["kind"] != "rollback" {
				t.Errorf("forced rollback: %v", m)
			}
		}},
	})
	es, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range es {
		found = found || (e.Action == "channel.rollback.forced" && e.Target == "appserver/dev" && strings.HasPrefix(e.Actor, "token:"))
	}
	if !found {
		t.Errorf("no channel.rollback.forced audit entry with the caller's token")
	}
}

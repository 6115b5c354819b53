package api_test

import (
	"context"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
)

func packerBuild(image, id string) *kiln.NewVersion {
	return &kiln.NewVersion{Image: image, Tags: kiln.Tags{"packer_run_uuid": id}, Provenance: kiln.Provenance{
		Method: kiln.MethodExternal, BuiltBy: "packer",
		Artifact: &kiln.Artifact{Ref: "packer:amazon-ebs:us-east-1:ami-" + id},
	}}
}

// The client's batch import is one request that the server records in one
// transaction: a batch with one refused build (an image that does not
// exist, a field the store refuses) records nothing, and the error names
// the build; a good batch records every build, numbered in order.
func TestImportVersionsOverHTTP(t *testing.T) {
	ts, _ := newServer(t)
	secret, _ := adminTokens.Load(ts)
	c, err := client.New(ts.URL, secret.(string), nil, client.AllowHTTP(true))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if code, _ := do(t, ts, "POST", "/api/v1/images", `{"name":"web"}`); code != 201 {
		t.Fatalf("create image: %d", code)
	}
	nothing := func(step string) {
		t.Helper()
		vs, total, err := c.ListVersions(ctx, kiln.VersionFilter{Image: "web"})
		if err != nil || total != 0 {
			t.Fatalf("after %s: %d versions recorded (%v), %v; want none", step, total, vs, err)
		}
	}

	_, err = c.CreateVersions(ctx, []*kiln.NewVersion{packerBuild("web", "0a1"), packerBuild("nope", "0a2")})
	if kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("batch with an unknown image: %v; want not_found", err)
	}
	nothing("a build of an unknown image")

	// Refused by the store, inside the transaction, after the first
	// build was written: a kiln-built version without a digest.
	bad := packerBuild("web", "0a3")
	bad.Provenance.Method = kiln.MethodFresh
	code, m := do(t, ts, "POST", "/api/v1/versions/import",
		`{"versions":[{"image":"web","method":"external","artifact":{"ref":"packer:amazon-ebs:us-east-1:ami-0a1","digest":"","size":0}},`+
			`{"image":"web","method":"fresh","artifact":{"ref":"packer:amazon-ebs:us-east-1:ami-0a3","digest":"","size":0}}]}`)
	if code != 400 || m["field"] != "body.versions[1].artifact.digest" {
		t.Fatalf("batch with an invalid build: %d %v; want 400 naming body.versions[1].artifact.digest", code, m)
	}
	nothing("an invalid build")
	if _, err := c.CreateVersions(ctx, []*kiln.NewVersion{packerBuild("web", "0a1"), bad}); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Fatalf("client batch with an invalid build: %v", err)
	}
	nothing("an invalid build through the client")

	vs, err := c.CreateVersions(ctx, []*kiln.NewVersion{packerBuild("web", "0a1"), packerBuild("web", "0a2")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Name != "web-1" || vs[1].Name != "web-2" || vs[1].Provenance.Artifact.Ref != "packer:amazon-ebs:us-east-1:ami-0a2" {
		t.Fatalf("recorded %+v", vs)
	}
	if vs[0].Provenance.RecordedBy != "token:test-admin" {
		t.Errorf("recorded by %q; want the token", vs[0].Provenance.RecordedBy)
	}
}

// An external version gets its packages once over HTTP; a second time, or
// for a version kiln built, the answer is 409-class immutable.
func TestSetPackagesOverHTTP(t *testing.T) {
	ts, _ := newServer(t)
	if code, _ := do(t, ts, "POST", "/api/v1/images", `{"name":"web"}`); code != 201 {
		t.Fatalf("create image: %d", code)
	}
	if code, m := do(t, ts, "POST", "/api/v1/images/web/versions", `{"method":"external","artifact":{"ref":"packer:amazon-ebs:us-east-1:ami-0a1","digest":"","size":0}}`); code != 201 {
		t.Fatalf("create version: %d %v", code, m)
	}
	if code, m := do(t, ts, "POST", "/api/v1/images/web/versions", `{"packages":[{"name":"bash","version":"5.2.15-2+b2","architecture":"amd64"}]}`); code != 201 {
		t.Fatalf("create version: %d %v", code, m)
	}
	pkgs := `{"packages":[{"name":"libssl3","version":"3.0.11-1~deb12u2","architecture":"amd64","source":"openssl"}]}`
	code, m := do(t, ts, "PUT", "/api/v1/images/web/versions/1/packages", pkgs)
	if code != 200 || len(m["provenance"].(map[string]any)["packages"].([]any)) != 1 {
		t.Fatalf("set packages: %d %v", code, m)
	}
	for _, path := range []string{"/api/v1/images/web/versions/1/packages", "/api/v1/images/web/versions/2/packages"} {
		if code, m := do(t, ts, "PUT", path, pkgs); code != 409 || m["code"] != kiln.EIMMUTABLE {
			t.Errorf("PUT %s again: %d %v; want 409 immutable", path, code, m)
		}
	}
	if code, m := do(t, ts, "PUT", "/api/v1/images/web/versions/1/packages", `{"packages":[{"name":"x"}]}`); code != 422 && code != 400 {
		t.Errorf("a package without a version: %d %v", code, m)
	}
}

package api_test

import (
	"context"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sbom"
	"github.com/kiln-project/kiln/sign"
)

func TestSBOMOverHTTP(t *testing.T) {
	ts, db, signer, toks := signingServer(t, true)
	ctx := context.Background()
	path := "/api/v1/images/web/versions/1/sbom"

	code, _, body := getRaw(t, ts, toks[kiln.RoleViewer], path)
	if code != 404 || !strings.Contains(string(body), "--generate") {
		t.Fatalf("before any SBOM: %d %s", code, body)
	}
	v, err := db.FindVersion(ctx, kiln.VersionRef{Image: "web", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range sbom.Formats {
		doc, _, err := sbom.Generate(v, f, sbom.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pt := sign.PredicateSPDX
		if f == sbom.FormatCycloneDX {
			pt = sign.PredicateCycloneDX
		}
		att, err := signer.SealSBOM(v, pt, doc)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.AddAttachment(ctx, v.Ref(), att); err != nil {
			t.Fatal(err)
		}
		code, ct, body := getRaw(t, ts, toks[kiln.RoleViewer], path+"?format="+string(f))
		if code != 200 || ct != f.MediaType() || !strings.Contains(string(body), "pkg:deb/debian/nginx@1.22.1-9?arch=amd64") {
			t.Errorf("%s: %d %s %s", f, code, ct, body)
		}
		code, _, body = getRaw(t, ts, toks[kiln.RoleViewer], path+"?format="+string(f)+"&envelope=true")
		if code != 200 || !strings.Contains(string(body), `"payloadType":"application/vnd.in-toto+json"`) {
			t.Errorf("%s envelope: %d %s", f, code, body)
		}
	}
	if code, _, _ := getRaw(t, ts, toks[kiln.RoleViewer], path+"?format=swid"); code != 422 && code != 400 {
		t.Errorf("unknown format: %d", code)
	}
	if code, _, _ := getRaw(t, ts, toks[kiln.RoleAgent], path); code != 403 {
		t.Errorf("agent: %d; want 403", code)
	}
}

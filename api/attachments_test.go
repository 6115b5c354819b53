package api_test

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
)

// A version's attachments are listed without content and read one by one
// with it; unknown names and versions are 404s naming them.
func TestAttachmentsOverHTTP(t *testing.T) {
	ts, db := storeServer(t)
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web"})
	if err != nil {
		t.Fatal(err)
	}
	log := "==> step 1: apt-get install nginx\n\x00binary\xff\n"
	if err := db.AddAttachment(ctx, v.Ref(), &kiln.Attachment{Name: "build.log", MediaType: "text/plain", Data: []byte(log)}); err != nil {
		t.Fatal(err)
	}
	base := "/api/v1/images/web/versions/1/attachments"
	runCases(t, ts, []apiCase{
		{name: "list", method: "GET", path: base, status: 200, check: func(t *testing.T, m map[string]any) {
			as := list(t, m, "attachments")
			if len(as) != 1 || as[0]["name"] != "build.log" || as[0]["size"] != float64(len(log)) || as[0]["data"] != nil {
				t.Errorf("attachments: %v", as)
			}
		}},
		{name: "get", method: "GET", path: base + "/build.log", status: 200, check: func(t *testing.T, m map[string]any) {
			data, err := base64.StdEncoding.DecodeString(m["data"].(string))
			if err != nil || string(data) != log || m["media_type"] != "text/plain" {
				t.Errorf("build.log: %v (%v)", m, err)
			}
		}},
		{name: "unknown name", method: "GET", path: base + "/test.json", status: 404, code: "not_found", says: "test.json"},
		{name: "unknown version", method: "GET", path: "/api/v1/images/web/versions/9/attachments", status: 404, code: "not_found", says: "web-9"},
		{name: "too long a name", method: "GET", path: base + "/" + strings.Repeat("a", 129), status: 400, code: "invalid", field: "path.name"},
		{name: "bad number", method: "GET", path: "/api/v1/images/web/versions/0/attachments/build.log", status: 400, code: "invalid", field: "path.number"},
	})
}

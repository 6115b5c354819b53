package api_test

import (
	"context"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
)

// Usage rows and package manifests come from the server's store; an
// advisory can be removed (once).
func TestUsageManifestsAndAdvisoryDeleteOverHTTP(t *testing.T) {
	ts, db := storeServer(t)
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Packages: []kiln.Package{
		{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"},
		{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64"},
	}}}); err != nil {
		t.Fatal(err)
	}
	v1 := kiln.VersionRef{Image: "web", Number: 1}
	if err := db.RegisterInstances(ctx, []*kiln.Instance{
		{Name: "a", Version: v1, Environment: "prod"}, {Name: "b", Version: v1, Environment: "prod"},
		{Name: "c", Version: v1, Environment: "dev"},
	}, kiln.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "DSA-1-1", Source: kiln.AdvisoryManual, FixedIn: []kiln.VersionRef{{Image: "web", Number: 2}}}}); err != nil {
		t.Fatal(err)
	}
	runCases(t, ts, []apiCase{
		{name: "usage", method: "GET", path: "/api/v1/fleet/usage", status: 200, check: func(t *testing.T, m map[string]any) {
			us := list(t, m, "usage")
			if len(us) != 2 || us[0]["environment"] != "dev" || us[1]["instances"] != float64(2) || us[1]["known"] != true {
				t.Errorf("usage: %v", us)
			}
		}},
		{name: "usage by env", method: "GET", path: "/api/v1/fleet/usage?env=prod&image=web", status: 200, check: func(t *testing.T, m map[string]any) {
			if us := list(t, m, "usage"); len(us) != 1 || us[0]["environment"] != "prod" {
				t.Errorf("usage in prod: %v", us)
			}
		}},
		{name: "usage of no image", method: "GET", path: "/api/v1/fleet/usage?image=nope", status: 200, check: func(t *testing.T, m map[string]any) {
			if us := list(t, m, "usage"); len(us) != 0 {
				t.Errorf("usage of nope: %v", us)
			}
		}},
		{name: "bad usage image", method: "GET", path: "/api/v1/fleet/usage?image=" + strings.Repeat("a", 64), status: 400, code: "invalid", field: "query.image"},
		{name: "manifests", method: "GET", path: "/api/v1/fleet/manifests?source=openssl,zlib", status: 200, check: func(t *testing.T, m map[string]any) {
			ms := list(t, m, "manifests")
			if len(ms) != 1 {
				t.Fatalf("manifests: %v", ms)
			}
			pk := list(t, ms[0], "packages")
			if len(pk) != 1 || pk[0]["name"] != "libssl3" {
				t.Errorf("packages of openssl: %v", pk)
			}
		}},
		{name: "manifests without sources", method: "GET", path: "/api/v1/fleet/manifests", status: 200, check: func(t *testing.T, m map[string]any) {
			if ms := list(t, m, "manifests"); len(ms) != 1 || len(list(t, ms[0], "packages")) != 0 {
				t.Errorf("manifests without sources: %v", ms)
			}
		}},
		{name: "delete advisory", method: "DELETE", path: "/api/v1/advisories/DSA-1-1", status: 204},
		{name: "deleted advisory", method: "GET", path: "/api/v1/advisories/DSA-1-1", status: 404, code: "not_found"},
		{name: "delete again", method: "DELETE", path: "/api/v1/advisories/DSA-1-1", status: 404, code: "not_found", says: "DSA-1-1"},
		{name: "delete too long an id", method: "DELETE", path: "/api/v1/advisories/" + strings.Repeat("a", 257), status: 400, code: "invalid", field: "path.id"},
	})
}

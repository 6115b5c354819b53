package client_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
)

// Usage over the API equals the store's SQL count; listings page as the store's do; errors about one
// instance of a batch name where it came from.
func TestFleetOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	ctx := context.Background()
	c, err := client.New(url, toks[kiln.RoleOperator], nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := c.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
			t.Fatal(err)
		}
	}
	v1 := kiln.VersionRef{Image: "appserver", Number: 1}
	if _, err := c.SetStatus(ctx, v1, kiln.StatusTested, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetStatus(ctx, v1, kiln.StatusReady, ""); err != nil {
		t.Fatal(err)
	}
	insts := []*kiln.Instance{
		{Name: "a", Version: v1, Environment: "prod"},
		{Name: "b", Version: v1, Environment: "prod", State: kiln.InstanceLost},
		{Name: "c", Version: kiln.VersionRef{Image: "appserver", Number: 2}, Environment: "staging"},
		{Name: "d", Version: kiln.VersionRef{Image: "other", Number: 7}, Environment: "prod"},
	}
	if err := c.RegisterInstances(ctx, insts, kiln.RegisterOptions{AllowUnknown: true}); err != nil {
		t.Fatal(err)
	}
	if insts[0].ID == "" {
		t.Error("the ids the server assigned are not passed back")
	}
	for _, f := range []kiln.UsageFilter{{}, {Environment: "prod"}, {Image: "appserver"}} {
		remote, err := c.Usage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		local, err := db.Usage(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(local, remote); d != "" {
			t.Errorf("usage %+v over HTTP differs from the store (-store +http):\n%s", f, d)
		}
	}
	page, total, err := c.ListInstances(ctx, kiln.InstanceFilter{Limit: 3, Offset: 2})
	if err != nil || total != 4 || len(page) != 2 {
		t.Errorf("page: %d of %d, %v", len(page), total, err)
	}
	lost, _, err := c.ListInstances(ctx, kiln.InstanceFilter{States: []kiln.InstanceState{kiln.InstanceLost}})
	if err != nil || len(lost) != 1 || lost[0].Name != "b" {
		t.Errorf("lost: %v %v", lost, err)
	}
	err = c.RegisterInstances(ctx, []*kiln.Instance{{Name: "e", Version: v1}, {Name: "f", Version: kiln.VersionRef{Image: "appserver", Number: 9}}},
		kiln.RegisterOptions{Where: []string{"hosts.csv:2", "hosts.csv:3"}})
	if kiln.ErrorCode(err) != kiln.ENOTFOUND || kiln.ErrorField(err) != "hosts.csv:3" {
		t.Errorf("batch error: %v (field %q)", err, kiln.ErrorField(err))
	}
	if _, err := c.FindInstance(ctx, "e"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("a refused batch registered some: %v", err)
	}
}

// Age policies, package manifests and advisory deletion go through the
// API with the answers the store gives, and the roles docs/security.md
// sets: policies are an admin's, advisories an operator's.
func TestPoliciesManifestsAdvisoriesOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	ctx := context.Background()
	admin, _ := client.New(url, toks[kiln.RoleAdmin], nil)
	operator, _ := client.New(url, toks[kiln.RoleOperator], nil)
	viewer, _ := client.New(url, toks[kiln.RoleViewer], nil)

	p := &kiln.AgePolicy{Environment: "prod", MaxAge: kiln.AgeOf(90 * 24 * time.Hour)}
	if err := admin.SetAgePolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.UpdatedBy != "token:admin" || p.UpdatedAt.IsZero() {
		t.Errorf("policy as answered: %+v", p)
	}
	remote, err := viewer.AgePolicies(ctx)
	if err != nil {
		t.Fatal(err)
	}
	local, _ := db.AgePolicies(ctx)
	if d := cmp.Diff(local, remote); d != "" {
		t.Errorf("policies over HTTP differ (-store +http):\n%s", d)
	}
	if err := operator.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "dev", MaxAge: 60}); kiln.ErrorCode(err) != kiln.EFORBIDDEN || !strings.Contains(err.Error(), "admin") {
		t.Errorf("operator setting a policy: %v", err)
	}
	if err := admin.SetAgePolicy(ctx, &kiln.AgePolicy{MaxAge: 60}); kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != "environment" {
		t.Errorf("policy without environment: %v", err)
	}
	if err := admin.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "dev"}); kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != "max_age_seconds" {
		t.Errorf("policy without age: %v (field %q)", err, kiln.ErrorField(err))
	}
	if err := admin.DeleteAgePolicy(ctx, "prod"); err != nil {
		t.Fatal(err)
	}
	if err := admin.DeleteAgePolicy(ctx, "prod"); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "prod") {
		t.Errorf("deleting twice: %v", err)
	}

	if err := admin.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	for _, pk := range [][]kiln.Package{
		{{Name: "libssl3", Version: "3.0.11-1~deb12u1", Architecture: "amd64", Source: "openssl"}},
		{{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"}, {Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64", Source: "zlib"}},
	} {
		if _, err := admin.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Packages: pk}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, sources := range [][]string{{"openssl"}, {"openssl", "zlib"}, nil} {
		remote, err := viewer.Manifests(ctx, sources)
		if err != nil {
			t.Fatal(err)
		}
		local, _ := db.Manifests(ctx, sources)
		if d := cmp.Diff(local, remote); d != "" {
			t.Errorf("manifests of %v over HTTP differ (-store +http):\n%s", sources, d)
		}
	}

	if _, err := operator.PutAdvisories(ctx, []*kiln.Advisory{{ID: "DSA-5678-1", Source: kiln.AdvisoryManual, FixedIn: []kiln.VersionRef{{Image: "web", Number: 2}}}}); err != nil {
		t.Fatal(err)
	}
	if err := viewer.DeleteAdvisory(ctx, "DSA-5678-1"); kiln.ErrorCode(err) != kiln.EFORBIDDEN || !strings.Contains(err.Error(), "operator") {
		t.Errorf("viewer deleting an advisory: %v", err)
	}
	if err := operator.DeleteAdvisory(ctx, "DSA-5678-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindAdvisory(ctx, "DSA-5678-1"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("advisory still stored: %v", err)
	}
	if err := operator.DeleteAdvisory(ctx, "DSA-5678-1"); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "DSA-5678-1") {
		t.Errorf("deleting twice: %v", err)
	}
}

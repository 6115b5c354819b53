package client_test

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
)

// Usage counted on the client from the instance listing equals the
// store's SQL count; listings page as the store's do; errors about one
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

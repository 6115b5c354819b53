package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// The instances list and a service's page show the configuration digest
// each instance was given and the environment definition that produced
// it; the service's rollouts show the configuration they replaced and
// rolled out.
func TestPagesShowConfiguration(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := kiln.WithActor(context.Background(), "local:test")
	const dev = "sha256:1111111111112222222222222222222222222222222222222222222222222222"
	const prod = "sha256:3333333333334444444444444444444444444444444444444444444444444444"
	v := kiln.VersionRef{Image: "appserver", Number: 2}
	if err := f.db.RegisterInstances(ctx, []*kiln.Instance{
		{ID: "web-dev-1", Version: v, Environment: "dev", ConfigDigest: dev, ConfigSource: "estate:/srv/estate env dev"},
		{ID: "web-prod-1", Version: v, Environment: "prod", ConfigDigest: prod, ConfigSource: "estate:/srv/estate env prod"},
	}, kiln.RegisterOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18097"}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: "web-prod-1", Version: v, State: kiln.MemberActive, Address: "127.0.0.1:40001"}); err != nil {
		t.Fatal(err)
	}
	ro := &kiln.Rollout{Service: "web", From: v, To: v, FromConfig: dev, ToConfig: prod}
	if err := f.db.CreateRollout(ctx, ro); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/fleet")
	for _, p := range []struct {
		path string
		want []string
	}{
		{"/ui/fleet/instances?image=appserver&version=2", []string{
			`<code title="` + dev + `">sha256:111111111111</code>`, "estate:/srv/estate env dev",
			`<code title="` + prod + `">sha256:333333333333</code>`, "estate:/srv/estate env prod"}},
		{"/ui/services/web", []string{
			`<tr data-instance="web-prod-1">`, `<code title="` + prod + `">sha256:333333333333</code><br><span class="config-source">estate:/srv/estate env prod</span>`,
			`id="rollout-from-config" title="` + dev + `"`, `id="rollout-to-config" title="` + prod + `"`}},
	} {
		resp, body := get(t, c, f, p.path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d\n%s", p.path, resp.StatusCode, body)
		}
		checkPage(t, p.path, resp, body)
		for _, w := range p.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s: page lacks %q", p.path, w)
			}
		}
	}
}

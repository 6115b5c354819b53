package web_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// A version's page links its stored SBOMs (both formats, and their signed
// envelopes, which the API serves to the signed-in session), says "none
// stored" without them, and shows a revocation through ancestry with the
// revoked ancestor; the image's page marks such versions too.
func TestVersionPageSBOMAndRevocation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := kiln.WithActor(context.Background(), "local:test")
	app := kiln.VersionRef{Image: "appserver", Number: 1} // built on basic-linux-1
	env := []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`)
	for _, name := range []string{"sbom.spdx.dsse.json", "sbom.cdx.dsse.json"} {
		if err := f.db.AddAttachment(ctx, app, &kiln.Attachment{Name: name, MediaType: "application/vnd.dsse.envelope.v1+json", Data: env}); err != nil {
			t.Fatal(err)
		}
	}
	base := kiln.VersionRef{Image: "basic-linux", Number: 1}
	if _, err := f.db.Revoke(ctx, base, "CVE-2026-6 in zlib"); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/fleet")
	sbom := "/api/v1/images/appserver/versions/1/sbom?format="
	for _, p := range []struct {
		path string
		want []string
	}{
		{"/ui/images/appserver/versions/1", []string{
			`id="version-status">revoked<`, `through its ancestor <a href="/ui/images/basic-linux/versions/1" id="revoked-through">basic-linux-1</a>`, "CVE-2026-6 in zlib", "by local:test",
			`<a href="` + sbom + `spdx">SPDX 2.3</a>`, `<a href="` + sbom + `spdx&amp;envelope=true">signed</a>`,
			`<a href="` + sbom + `cyclonedx">CycloneDX 1.6</a>`}},
		{"/ui/images/basic-linux/versions/1", []string{`id="version-status">revoked<`, "CVE-2026-6 in zlib", "none stored", "kiln version sbom basic-linux-1 --generate"}},
		{"/ui/images/appserver", []string{`through <a href="/ui/images/basic-linux/versions/1">basic-linux-1</a>`}},
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
	if strings.Contains(func() string { _, b := get(t, c, f, "/ui/images/basic-linux/versions/1"); return b }(), "revoked-through") {
		t.Error("basic-linux-1 was revoked itself, yet its page names an ancestor")
	}
	// The link works for the signed-in dashboard session.
	resp, err := c.Get(f.srv.URL + sbom + "spdx&envelope=true")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(got) != string(env) {
		t.Errorf("GET the SBOM envelope as the dashboard session: %d %q", resp.StatusCode, got)
	}
}

package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// TestVersionPageReproduced shows whether a version was reproduced and
// when, and each rebuild check.
func TestVersionPageReproduced(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/fleet")
	path := "/ui/images/appserver/versions/2"
	_, body := get(t, c, f, path)
	if !strings.Contains(body, `id="reproduced">not checkable: built before reproducible bakes`) {
		t.Errorf("a version without SOURCE_DATE_EPOCH: page lacks the note")
	}
	ctx := kiln.WithActor(context.Background(), "alice")
	ref := kiln.VersionRef{Image: "appserver", Number: 2}
	for _, r := range []*kiln.Reproduction{
		{Version: ref, Digest: "sha256:" + strings.Repeat("b", 64), Summary: "1 files differ:\n  /etc/stamp  content"},
		{Version: ref, Identical: true, Digest: "sha256:" + strings.Repeat("a", 64), Seal: func(r *kiln.Reproduction) (*kiln.Attachment, error) {
			return &kiln.Attachment{Name: r.AttestationName(), MediaType: "application/vnd.dsse.envelope.v1+json", Data: []byte("{}")}, nil
		}},
	} {
		if err := f.db.RecordReproduction(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	resp, body := get(t, c, f, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	checkPage(t, path, resp, body)
	for _, w := range []string{`id="reproduced"><span class="status-ready">yes</span> bit for bit, checked <time`, "by alice",
		`id="reproductions"`, "/etc/stamp  content", "identical", "different",
		`<a href="/api/v1/images/appserver/versions/2/attachments/reproduction.`, `.dsse.json" title="in-toto statement`, ">signed</a>", "<td>no</td>"} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %q", w)
		}
	}
}

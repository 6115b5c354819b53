package web_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// The exposure page shows each advisory source's state: a failing one
// with its error, and that its previous advisories are kept.
func TestExposurePageAdvisorySources(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	ctx := kiln.WithActor(context.Background(), "local:test")
	if err := f.db.CreateAdvisoryFeed(ctx, &kiln.AdvisoryFeed{Name: "tracker", Kind: kiln.AdvisoryDebianTracker,
		URL: "http://127.0.0.1:9/tracker/data/json", Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if err := f.db.RecordFeedCheck(ctx, "tracker", kiln.FeedCheck{Err: "advisory source tracker: unreachable: connection refused"}); err != nil {
		t.Fatal(err)
	}
	c := f.client(t)
	f.signIn(t, c, f.viewer, "/ui/exposure")
	resp, body := get(t, c, f, "/ui/exposure")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	checkPage(t, "/ui/exposure", resp, body)
	for _, want := range []string{`id="advisory-sources"`, `data-source="tracker"`, "unreachable: connection refused", "previous advisories kept", "never"} {
		if !strings.Contains(body, want) {
			t.Errorf("exposure page lacks %q", want)
		}
	}
}

package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func feedAdv(id, pkg string) *kiln.Advisory {
	return &kiln.Advisory{ID: id, Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{{Name: pkg, Status: kiln.AffectedOpen}}}
}

// A source's sync replaces exactly its own advisories, all or nothing; a
// hand-imported advisory is left alone; removing the source removes its
// advisories.
func TestAdvisorySources(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:test")
		f := &kiln.AdvisoryFeed{Name: "osv-debian", Kind: kiln.AdvisoryOSV, URL: "https://example.org/Debian/all.zip", Every: time.Hour}
		if err := e.CreateAdvisoryFeed(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := e.CreateAdvisoryFeed(ctx, f); kiln.ErrorCode(err) != kiln.ECONFLICT {
			t.Fatalf("second add: %v, want a conflict", err)
		}
		bad := *f
		bad.Name, bad.Every = "fast", time.Second
		if err := e.CreateAdvisoryFeed(ctx, &bad); kiln.ErrorField(err) != "every" {
			t.Fatalf("1s interval: %v", err)
		}
		if _, err := e.PutAdvisories(ctx, []*kiln.Advisory{feedAdv("MANUAL-1", "bash")}); err != nil {
			t.Fatal(err)
		}
		imp := must[kiln.FeedImport](t)(e.ReplaceFeedAdvisories(ctx, "osv-debian", []*kiln.Advisory{feedAdv("DSA-1-1", "openssl"), feedAdv("DSA-2-1", "zlib")}, `"e1"`, "Mon, 01 Jan 2024 00:00:00 GMT"))
		if imp.Created != 2 {
			t.Fatalf("first sync: %+v", imp)
		}
		got := must[*kiln.AdvisoryFeed](t)(e.FindAdvisoryFeed(ctx, "osv-debian"))
		if got.ETag != `"e1"` || got.LastModified == "" || got.Advisories != 2 || got.LastSuccess.IsZero() || got.LastError != "" {
			t.Fatalf("after sync: %+v", got)
		}
		// A sync with a bad advisory changes nothing.
		if _, err := e.ReplaceFeedAdvisories(ctx, "osv-debian", []*kiln.Advisory{feedAdv("DSA-3-1", "curl"), {ID: "", Source: kiln.AdvisoryOSV}}, `"e2"`, ""); err == nil {
			t.Fatal("an invalid advisory was imported")
		}
		if _, err := e.FindAdvisory(ctx, "DSA-3-1"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Fatalf("DSA-3-1 imported from a failed sync: %v", err)
		}
		if err := e.RecordFeedCheck(ctx, "osv-debian", kiln.FeedCheck{Err: "x.json:1:2: ranges: want an array"}); err != nil {
			t.Fatal(err)
		}
		got = must[*kiln.AdvisoryFeed](t)(e.FindAdvisoryFeed(ctx, "osv-debian"))
		if !strings.Contains(got.LastError, "ranges") || got.ETag != `"e1"` || got.Advisories != 2 {
			t.Fatalf("after a failure: %+v", got)
		}
		imp = must[kiln.FeedImport](t)(e.ReplaceFeedAdvisories(ctx, "osv-debian", []*kiln.Advisory{feedAdv("DSA-2-1", "zlib"), feedAdv("DSA-3-1", "curl")}, `"e3"`, ""))
		if imp.Created != 1 || imp.Removed != 1 || imp.Unchanged != 1 {
			t.Fatalf("second sync: %+v", imp)
		}
		if got = must[*kiln.AdvisoryFeed](t)(e.FindAdvisoryFeed(ctx, "osv-debian")); got.LastError != "" {
			t.Fatalf("a success kept the last error: %q", got.LastError)
		}
		if _, err := e.FindAdvisory(ctx, "DSA-1-1"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Fatalf("DSA-1-1 is no longer in the source but kept: %v", err)
		}
		if n := must[int](t)(e.DeleteAdvisoryFeed(ctx, "osv-debian")); n != 2 {
			t.Fatalf("remove: %d advisories removed, want 2", n)
		}
		if _, err := e.FindAdvisory(ctx, "MANUAL-1"); err != nil {
			t.Fatalf("the hand-imported advisory went with the source: %v", err)
		}
		if fs := must[[]*kiln.AdvisoryFeed](t)(e.ListAdvisoryFeeds(ctx)); len(fs) != 0 {
			t.Fatalf("sources left: %+v", fs)
		}
	})
}

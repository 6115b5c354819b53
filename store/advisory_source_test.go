package store

import (
	"context"
	"fmt"
	"iter"
	"strconv"
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
		imp := must[kiln.FeedImport](t)(e.ReplaceFeedAdvisories(ctx, "osv-debian", kiln.AdvisoriesOf([]*kiln.Advisory{feedAdv("DSA-1-1", "openssl"), feedAdv("DSA-2-1", "zlib")}), `"e1"`, "Mon, 01 Jan 2024 00:00:00 GMT"))
		if imp.Created != 2 {
			t.Fatalf("first sync: %+v", imp)
		}
		got := must[*kiln.AdvisoryFeed](t)(e.FindAdvisoryFeed(ctx, "osv-debian"))
		if got.ETag != `"e1"` || got.LastModified == "" || got.Advisories != 2 || got.LastSuccess.IsZero() || got.LastError != "" {
			t.Fatalf("after sync: %+v", got)
		}
		// A sync with a bad advisory changes nothing.
		if _, err := e.ReplaceFeedAdvisories(ctx, "osv-debian", kiln.AdvisoriesOf([]*kiln.Advisory{feedAdv("DSA-3-1", "curl"), {ID: "", Source: kiln.AdvisoryOSV}}), `"e2"`, ""); err == nil {
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
		imp = must[kiln.FeedImport](t)(e.ReplaceFeedAdvisories(ctx, "osv-debian", kiln.AdvisoriesOf([]*kiln.Advisory{feedAdv("DSA-2-1", "zlib"), feedAdv("DSA-3-1", "curl")}), `"e3"`, ""))
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

// A sync streamed in chunks that fails after several chunks were written
// (a malformed record, a repeated id, an invalid advisory) rolls them all
// back: the source keeps exactly its previous advisories, validators and
// count. Then a sync of the same size succeeds.
func TestReplaceFeedAdvisoriesFailsMidway(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:test")
		f := &kiln.AdvisoryFeed{Name: "osv-debian", Kind: kiln.AdvisoryOSV, URL: "https://example.org/Debian/all.zip", Every: time.Hour}
		if err := e.CreateAdvisoryFeed(ctx, f); err != nil {
			t.Fatal(err)
		}
		prev := []*kiln.Advisory{feedAdv("DSA-1-1", "openssl"), feedAdv("DSA-2-1", "zlib")}
		must[kiln.FeedImport](t)(e.ReplaceFeedAdvisories(ctx, "osv-debian", kiln.AdvisoriesOf(prev), `"e1"`, ""))

		n := 3*feedChunk + 7 // three chunks written before the failure
		many := func(last func(yield func(*kiln.Advisory, error) bool) bool) iter.Seq2[*kiln.Advisory, error] {
			return func(yield func(*kiln.Advisory, error) bool) {
				for i := range n {
					if !yield(feedAdv(fmt.Sprintf("DLA-%d-1", i), "pkg"+strconv.Itoa(i)), nil) {
						return
					}
				}
				last(yield)
			}
		}
		for _, c := range []struct {
			name string
			last func(yield func(*kiln.Advisory, error) bool) bool
			want string
		}{
			{"malformed record", func(yield func(*kiln.Advisory, error) bool) bool {
				return yield(nil, kiln.FieldErrorf(kiln.EINVALID, "all.zip#DLA-9999-1.json", "ranges: is an object; want an array"))
			}, "DLA-9999-1.json"},
			{"repeated id", func(yield func(*kiln.Advisory, error) bool) bool {
				return yield(feedAdv("DLA-3-1", "again"), nil)
			}, "DLA-3-1 is given twice"},
			{"invalid advisory", func(yield func(*kiln.Advisory, error) bool) bool {
				return yield(&kiln.Advisory{ID: "DLA-X", Source: kiln.AdvisoryOSV}, nil)
			}, "DLA-X"},
		} {
			_, err := e.ReplaceFeedAdvisories(ctx, "osv-debian", many(c.last), `"e2"`, "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%s after %d good advisories: %v, want an error saying %q", c.name, n, err, c.want)
			}
			got := must[*kiln.AdvisoryFeed](t)(e.FindAdvisoryFeed(ctx, "osv-debian"))
			if got.Advisories != 2 || got.ETag != `"e1"` {
				t.Fatalf("%s: the source now says %d advisories, etag %s; want the previous 2 and \"e1\"", c.name, got.Advisories, got.ETag)
			}
			all, total, err := e.ListAdvisories(ctx, kiln.AdvisoryFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if total != 2 || all[0].ID != "DSA-1-1" || all[1].ID != "DSA-2-1" {
				t.Fatalf("%s: %d advisories stored (%v…), want the previous DSA-1-1 and DSA-2-1", c.name, total, all[0].ID)
			}
		}

		imp := must[kiln.FeedImport](t)(e.ReplaceFeedAdvisories(ctx, "osv-debian", many(func(func(*kiln.Advisory, error) bool) bool { return true }), `"e3"`, ""))
		if imp.Created != n || imp.Removed != 2 || imp.Held() != n {
			t.Fatalf("the full sync: %+v, want %d new and 2 removed", imp, n)
		}
		if got := must[*kiln.AdvisoryFeed](t)(e.FindAdvisoryFeed(ctx, "osv-debian")); got.Advisories != n {
			t.Fatalf("the source says %d advisories, want %d", got.Advisories, n)
		}
	})
}

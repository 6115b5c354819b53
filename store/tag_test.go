package store

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

func TestUpdateTags(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "bob")
		mkImage(t, e.DB, "appserver")
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver", Tags: kiln.Tags{"team": "web", "tier": "1"}})

		before := e.counts(t)
		_, err := e.UpdateTags(ctx, v.Ref(), kiln.TagUpdate{Set: kiln.Tags{"Release_Status": "ready"}})
		wantContains(t, wantCode(t, err, kiln.EINVALID), "maintained by kiln")
		_, err = e.UpdateTags(ctx, v.Ref(), kiln.TagUpdate{Remove: []string{"Name"}})
		wantCode(t, err, kiln.EINVALID)
		_, err = e.UpdateTags(ctx, ref("appserver", 5), kiln.TagUpdate{Set: kiln.Tags{"a": "b"}})
		wantCode(t, err, kiln.ENOTFOUND)
		many := kiln.Tags{}
		for i := range kiln.MaxTags {
			many["k"+string(rune('a'+i%26))+string(rune('a'+i/26))] = "v"
		}
		_, err = e.UpdateTags(ctx, v.Ref(), kiln.TagUpdate{Set: many})
		wantContains(t, wantCode(t, err, kiln.EINVALID), "the limit is 50")
		e.unchanged(t, before)

		must[*kiln.Version](t)(e.UpdateTags(ctx, v.Ref(), kiln.TagUpdate{
			Set:    kiln.Tags{"team": "payments", "owner": "bob@example.com", "tier": "1"},
			Remove: []string{"absent"},
			Reason: "reorg",
		}))
		got := must[*kiln.Version](t)(e.UpdateTags(ctx, v.Ref(), kiln.TagUpdate{Remove: []string{"tier"}}))
		want := kiln.Tags{"team": "payments", "owner": "bob@example.com", "Name": "appserver", "Version": "1", "Release_Status": "candidate"}
		if diff := cmp.Diff(want, got.Tags); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		found := must[*kiln.Version](t)(e.FindVersion(ctx, v.Ref()))
		if diff := cmp.Diff(got, found); diff != "" {
			t.Errorf("UpdateTags result differs from FindVersion (-updated +found):\n%s", diff)
		}

		hs := must[[]*kiln.HistoryEntry](t)(e.History(ctx, v.Ref()))
		var changes []string
		for _, h := range hs[3:] { // after status and the two creation tags
			changes = append(changes, h.Actor+" "+h.Field+" "+h.From+"→"+h.To+" ("+h.Reason+")")
		}
		wantChanges := []string{
			"bob tag:owner →bob@example.com (reorg)",
			"bob tag:team web→payments (reorg)",
			"bob tag:tier 1→ ()",
		}
		if diff := cmp.Diff(wantChanges, changes); diff != "" {
			t.Errorf("tag history (-want +got):\n%s", diff)
		}

		vs, total, err := e.ListVersions(ctx, kiln.VersionFilter{Tags: kiln.Tags{"team": "payments", "owner": "bob@example.com"}})
		if err != nil || total != 1 || vs[0].Name != "appserver-1" {
			t.Errorf("search by new tags: %v, %d, %v", names(vs), total, err)
		}
		if _, total, _ := e.ListVersions(ctx, kiln.VersionFilter{Tags: kiln.Tags{"tier": "1"}}); total != 0 {
			t.Errorf("removed tag still found (%d)", total)
		}
	})
}

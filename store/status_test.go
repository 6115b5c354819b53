package store

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

func TestSetStatus(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		mkImage(t, e.DB, "appserver")
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})

		before := e.counts(t)
		_, err := e.SetStatus(ctx, v.Ref(), kiln.StatusReady, "skip tests")
		msg := wantCode(t, err, kiln.ECONFLICT)
		wantContains(t, msg, "appserver-1 is candidate and cannot become ready", "tested or failed")
		_, err = e.SetStatus(ctx, v.Ref(), kiln.StatusCandidate, "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "already candidate", "tested or failed")
		_, err = e.SetStatus(ctx, v.Ref(), "shipped", "")
		wantCode(t, err, kiln.EINVALID)
		_, err = e.SetStatus(ctx, ref("appserver", 2), kiln.StatusTested, "")
		wantCode(t, err, kiln.ENOTFOUND)
		e.unchanged(t, before)

		tested := must[*kiln.Version](t)(e.SetStatus(ctx, v.Ref(), kiln.StatusTested, "goss suite passed"))
		if tested.Status != kiln.StatusTested || tested.Tags[kiln.TagReleaseStatus] != "tested" || !tested.UpdatedAt.After(v.CreatedAt) {
			t.Errorf("after SetStatus: %+v", tested)
		}
		ready := must[*kiln.Version](t)(e.SetStatus(kiln.WithActor(ctx, "pipeline"), v.Ref(), kiln.StatusReady, "all stages passed"))
		found := must[*kiln.Version](t)(e.FindVersion(ctx, v.Ref()))
		if diff := cmp.Diff(ready, found); diff != "" {
			t.Errorf("SetStatus result differs from FindVersion (-set +found):\n%s", diff)
		}
		must[*kiln.Version](t)(e.SetStatus(ctx, v.Ref(), kiln.StatusRevoked, "CVE-2026-0001"))
		_, err = e.SetStatus(ctx, v.Ref(), kiln.StatusReady, "")
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "revoked, which is final")

		hs := must[[]*kiln.HistoryEntry](t)(e.History(ctx, v.Ref()))
		type entry struct{ Actor, Field, From, To, Reason string }
		var got []entry
		for i, h := range hs {
			got = append(got, entry{h.Actor, h.Field, h.From, h.To, h.Reason})
			if i > 0 && !h.Time.After(hs[i-1].Time) {
				t.Errorf("history times not increasing: %v then %v", hs[i-1].Time, h.Time)
			}
		}
		want := []entry{
			{"unknown", "status", "", "candidate", "created"},
			{"alice", "status", "candidate", "tested", "goss suite passed"},
			{"pipeline", "status", "tested", "ready", "all stages passed"},
			{"alice", "status", "ready", "revoked", "CVE-2026-0001"},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("history (-want +got):\n%s", diff)
		}
	})
}

package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func TestReproductionsAndEpoch(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		mkImage(t, e.DB, "basic-linux")
		v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{
			Method: kiln.MethodFresh, SourceDateEpoch: 1733500000, SourceDateEpochFrom: "git commit 0123abc",
		}})
		got := must[*kiln.Version](t)(e.FindVersion(ctx, v.Ref()))
		if got.Provenance.SourceDateEpoch != 1733500000 || got.Provenance.SourceDateEpochFrom != "git commit 0123abc" {
			t.Fatalf("epoch not kept: %d %q", got.Provenance.SourceDateEpoch, got.Provenance.SourceDateEpochFrom)
		}
		if list := must[[]*kiln.Reproduction](t)(e.ListReproductions(ctx, v.Ref())); len(list) != 0 {
			t.Fatalf("new version has checks: %+v", list)
		}
		d1 := "sha256:" + strings.Repeat("a", 64)
		d2 := "sha256:" + strings.Repeat("b", 64)
		diff := []kiln.DifferingFile{{Path: "/etc/stamp", What: []string{"content", "size"}, Step: "shell (stamp.kiln.hcl:5)"}}
		if err := e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Identical: false, Digest: d2, Summary: "1 files differ", Elapsed: 1500 * time.Millisecond, DifferingFiles: 1, Files: diff}); err != nil {
			t.Fatal(err)
		}
		if err := e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Identical: true, Digest: d1}); err != nil {
			t.Fatal(err)
		}
		list := must[[]*kiln.Reproduction](t)(e.ListReproductions(ctx, v.Ref()))
		if len(list) != 2 || !list[0].Identical || list[1].Identical || list[1].Summary != "1 files differ" ||
			list[1].Elapsed != 1500*time.Millisecond || list[0].Actor != "alice" || !list[0].At.After(list[1].At) {
			t.Fatalf("checks: %+v %+v", list[0], list[1])
		}
		if f := list[1].Files; list[1].DifferingFiles != 1 || len(f) != 1 || f[0].Path != "/etc/stamp" || strings.Join(f[0].What, ",") != "content,size" || f[0].Step != diff[0].Step || list[0].Files != nil || list[0].DifferingFiles != 0 {
			t.Fatalf("differing files: %+v / %+v", list[1], list[0])
		}
		wantCode(t, e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Digest: d1, DifferingFiles: 0, Files: diff}), kiln.EINVALID)
		wantCode(t, e.RecordReproduction(ctx, &kiln.Reproduction{Version: ref("basic-linux", 9), Digest: d1}), kiln.ENOTFOUND)
		wantCode(t, e.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Digest: "nope"}), kiln.EINVALID)
		_, err := e.ListReproductions(ctx, ref("basic-linux", 9))
		wantCode(t, err, kiln.ENOTFOUND)
		h := must[[]*kiln.HistoryEntry](t)(e.History(ctx, v.Ref()))
		if last := h[len(h)-1]; last.Field != "reproduction" || last.To != "identical" {
			t.Errorf("history: %+v", last)
		}
	})
}

package store

import (
	"context"
	"testing"

	"github.com/kiln-project/kiln"
)

// TestUsageBuiltAt: the build time Usage packs into text comes back to the
// microsecond on both databases, with status and latest ready version.
func TestUsageBuiltAt(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		v1 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		v2 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		must[*kiln.Version](t)(e.SetStatus(ctx, v1.Ref(), kiln.StatusTested, ""))
		must[*kiln.Version](t)(e.SetStatus(ctx, v1.Ref(), kiln.StatusReady, ""))
		if err := e.RegisterInstances(ctx, []*kiln.Instance{
			{ID: "i-1", Version: v1.Ref(), Environment: "prod"},
			{ID: "i-2", Version: v2.Ref(), Environment: ""},
		}, kiln.RegisterOptions{}); err != nil {
			t.Fatal(err)
		}
		us := must[[]*kiln.Usage](t)(e.Usage(ctx, kiln.UsageFilter{}))
		if len(us) != 2 {
			t.Fatalf("usage: %d rows, want 2", len(us))
		}
		for i, v := range []*kiln.Version{v1, v2} {
			u := us[i]
			if u.Ref() != v.Ref() || !u.Known || !u.BuiltAt.Equal(v.CreatedAt) || u.BuiltAt.Nanosecond() == 0 || u.LatestReady != 1 {
				t.Errorf("usage %d = %+v; want %s built at %s, latest ready 1", i, u, v.Ref(), v.CreatedAt)
			}
		}
		if us[0].Status != kiln.StatusReady || us[1].Status != kiln.StatusCandidate || us[1].Environment != "" {
			t.Errorf("statuses/environments: %+v %+v", us[0], us[1])
		}
	})
}

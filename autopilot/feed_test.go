package autopilot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/feed"
	"github.com/kiln-project/kiln/internal/aptrepotest"
	"github.com/kiln-project/kiln/pipeline"
)

// TestAutoRefreshFromFeed follows an advisory from a loopback OSV feed:
// the scheduled sync imports "kiln-demo fixed in 1.0-2" and tells the
// autopilot (feed.Syncer.Synced), which finds the 4 instances of
// appserver-1 in prod exposed and refreshes; a second sync answers 304
// and tells nobody.
func TestAutoRefreshFromFeed(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	if err := w.db.DeleteAdvisory(ctx, "OSV-DEMO-1"); err != nil { // the world's own, put by hand
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(autoEstate), 0o644); err != nil {
		t.Fatal(err)
	}
	osv := aptrepotest.NewFeed(t, aptrepotest.FixedRecord("KILN-DEMO-2026-1", "kiln-demo", "1.0-2", "high"))
	if err := w.db.CreateAdvisoryFeed(ctx, &kiln.AdvisoryFeed{Name: "demo", Kind: kiln.AdvisoryOSV, URL: osv.URL, Every: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rf, started, rolled, _ := w.refresher(t)
	a := &Auto{
		Estates:    func(context.Context) []pipeline.Estate { return []pipeline.Estate{{Dir: dir}} },
		LoadEstate: loadEstate, Fleet: w.db, Registry: w.db, Advisories: w.db, Audit: w.db,
		Refresher: func(pipeline.Estate) *Refresher { return rf },
	}
	if xs, err := a.Exposures(ctx, "prod", definition.RefreshPolicy{MinSeverity: "high"}); err != nil || len(xs) != 0 {
		t.Fatalf("before the sync: %+v %v", xs, err)
	}
	var acted []*Exposure
	sy := &feed.Syncer{Store: w.db, Synced: func(ctx context.Context, res *feed.Result) {
		xs, err := a.Check(ctx, "advisory source "+res.Source+" synced")
		if err != nil {
			t.Error(err)
		}
		acted = append(acted, xs...)
	}}
	if _, err := sy.SyncDue(ctx); err != nil {
		t.Fatal(err)
	}
	if len(acted) != 1 || acted[0].Advisory != "KILN-DEMO-2026-1" || acted[0].Instances != 4 {
		t.Fatalf("after the sync the autopilot acted on %+v; want KILN-DEMO-2026-1 exposing 4 instances", acted)
	}
	if len(*started) != 1 || !strings.Contains((*started)[0], "KILN-DEMO-2026-1") || len(*rolled) != 1 {
		t.Errorf("runs %q, rollouts %+v", *started, *rolled)
	}
	es, err := w.db.ListAudit(ctx, kiln.AuditFilter{Actor: Actor})
	found := false
	for _, e := range es {
		found = found || (e.Action == "autopilot.refresh" && strings.Contains(e.Detail, "KILN-DEMO-2026-1 (high, at or above high) exposes 4 instance(s)") &&
			strings.Contains(e.Detail, "advisory source demo synced"))
	}
	if err != nil || !found {
		t.Errorf("no audit entry says the sync started the refresh (%v)", err)
	}
}

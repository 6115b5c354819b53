package autopilot

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

const autoEstate = `
image "appserver" {
  debian { suite = "bookworm" }
}
environment "prod" {
  refresh {
    auto         = true
    min_severity = "high"
  }
}
`

func loadEstate(dir string, vars map[string]string) (*definition.Estate, error) {
	est, diags := definition.Load(dir, definition.Options{Vars: vars})
	if diags.HasErrors() {
		return nil, diags
	}
	return est, nil
}

// TestAutoRefresh: prod refreshes by itself for an advisory at its
// threshold, audited as the autopilot; the same advisory is not refreshed
// again on the next pass, and one below the threshold never is.
func TestAutoRefresh(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(autoEstate), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := w.db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "OSV-DEMO-LOW", Source: kiln.AdvisoryOSV, Summary: "minor",
		Packages: []kiln.AffectedPackage{{Ecosystem: "Debian:12", Release: "bookworm", Name: "kiln-demo", Fixed: "1.0-3", Status: kiln.AffectedFixed, Severity: "low"}}}}); err != nil {
		t.Fatal(err)
	}
	rf, started, rolled, _ := w.refresher(t)
	a := &Auto{
		Estates:    func(context.Context) []pipeline.Estate { return []pipeline.Estate{{Dir: dir}} },
		LoadEstate: loadEstate, Fleet: w.db, Registry: w.db, Advisories: w.db, Audit: w.db,
		Refresher: func(pipeline.Estate) *Refresher { return rf },
	}
	acted, err := a.Check(ctx, "advisory source demo synced")
	if err != nil {
		t.Fatal(err)
	}
	if len(acted) != 1 || acted[0].Advisory != "OSV-DEMO-1" || acted[0].Instances != 4 || acted[0].Severity != "high" {
		t.Fatalf("acted on %+v; want OSV-DEMO-1 only (4 instances of appserver-1 in prod)", acted)
	}
	if len(*started) != 1 || len(*rolled) != 1 || (*rolled)[0].To.String() != "appserver-2" {
		t.Errorf("runs %q, rollouts %+v", *started, *rolled)
	}
	es, err := w.db.ListAudit(ctx, kiln.AuditFilter{Target: "environment prod"})
	if err != nil || len(es) != 2 {
		t.Fatalf("audit: %d entries, %v", len(es), err)
	}
	if es[0].Actor != Actor || es[0].Action != "autopilot.refresh" || !strings.Contains(es[0].Detail, "OSV-DEMO-1 (high, at or above high) exposes 4 instance(s) on appserver-1") ||
		!strings.Contains(es[0].Detail, "estate.kiln.hcl:6") {
		t.Errorf("first audit entry: %+v", es[0])
	}
	if es[1].Action != "autopilot.refresh.done" || !strings.Contains(es[1].Detail, "web → appserver-2 succeeded") || !strings.Contains(es[1].Detail, "batch-0 outside services: kiln instance launch appserver-2") {
		t.Errorf("second audit entry: %+v", es[1])
	}

	// The members still run appserver-1 (the rollouts here change
	// nothing): the next pass leaves the advisory alone.
	acted, err = a.Check(ctx, "periodic check")
	if err != nil || len(acted) != 0 || len(*started) != 1 {
		t.Errorf("second pass acted on %+v (%v), runs %q; want nothing", acted, err, *started)
	}
}

// TestAutoRefreshPaused: a paused environment is left alone; in a running
// one, a paused service is neither built for nor rolled out, and the
// audit says why.
func TestAutoRefreshPaused(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(autoEstate), 0o644); err != nil {
		t.Fatal(err)
	}
	rf, started, rolled, _ := w.refresher(t)
	rf.Paused = func(_ context.Context, service string) (string, bool) {
		return "paused by local:ops: INC-9", service == "web"
	}
	envPaused := true
	a := &Auto{
		Estates:    func(context.Context) []pipeline.Estate { return []pipeline.Estate{{Dir: dir}} },
		LoadEstate: loadEstate, Fleet: w.db, Registry: w.db, Advisories: w.db, Audit: w.db,
		Refresher: func(pipeline.Estate) *Refresher { return rf },
		Paused:    func(context.Context, string) (bool, error) { return envPaused, nil },
	}
	if acted, err := a.Check(ctx, "tick"); err != nil || len(acted) != 0 {
		t.Fatalf("paused environment: acted on %+v (%v)", acted, err)
	}
	envPaused = false
	if acted, err := a.Check(ctx, "tick"); err != nil || len(acted) != 1 {
		t.Fatalf("resumed environment: acted on %+v (%v)", acted, err)
	}
	if len(*started) != 0 || len(*rolled) != 0 {
		t.Errorf("a paused service got runs %q and rollouts %+v", *started, *rolled)
	}
	es, err := w.db.ListAudit(ctx, kiln.AuditFilter{Target: "environment prod"})
	if err != nil || len(es) != 2 || !strings.Contains(es[1].Detail, "web blocked: paused by local:ops: INC-9") {
		t.Fatalf("audit: %+v %v", es, err)
	}
}

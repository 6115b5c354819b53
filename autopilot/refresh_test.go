package autopilot

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
)

// world is a real SQLite store with appserver-1 (kiln-demo 1.0-1) ready
// and on the prod channel, a 3-instance service on it, one instance
// outside services, and an OSV-style record "kiln-demo fixed in 1.0-2".
type world struct {
	db  *store.DB
	ref *rollout.Refresh

	mu sync.Mutex
	at time.Time // the store's and the tests' now; zero: time.Now
}

// clock is the world's now: the store records times by it and the
// autopilot judges windows and limits by it.
func (w *world) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.at.IsZero() {
		return time.Now()
	}
	return w.at
}

func (w *world) set(t time.Time) {
	w.mu.Lock()
	w.at = t
	w.mu.Unlock()
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{}
	db, err := store.Open(ctx, "", t.TempDir(), nil, w.clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	w.db = db
	v := w.version(t, "1.0-1")
	if _, err := db.Promote(ctx, v.Ref(), "prod", "", "test"); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 3, Listen: "127.0.0.1:18090"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"web-0", "web-1", "web-2", "batch-0"} {
		if err := db.CreateInstance(ctx, &kiln.Instance{ID: id, Name: id, Version: v.Ref(), Environment: "prod", Platform: "local", State: kiln.InstanceRunning}); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(id, "web") {
			if err := db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: id, Version: v.Ref(), State: kiln.MemberActive}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "OSV-DEMO-1", Source: kiln.AdvisoryOSV, Summary: "kiln-demo fixed in 1.0-2",
		Packages: []kiln.AffectedPackage{{Ecosystem: "Debian:12", Release: "bookworm", Name: "kiln-demo", Fixed: "1.0-2", Status: kiln.AffectedFixed, Severity: "high"}}}}); err != nil {
		t.Fatal(err)
	}
	fl := fleet.New(db, db)
	fl.Channels = db
	w.ref = &rollout.Refresh{Services: db, Registry: db, Inventory: db, Advisories: db, Fleet: db, Channels: db, Exposure: fl}
	return w
}

// version records a ready appserver version carrying kiln-demo pkg, as
// the pipeline would.
func (w *world) version(t *testing.T, pkg string) *kiln.Version {
	t.Helper()
	ctx := context.Background()
	art := &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("a", 64)}
	v, err := w.db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art,
		Sources:  []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian", Digest: "sha256:" + strings.Repeat("b", 64)}},
		Packages: []kiln.Package{{Name: "kiln-demo", Version: pkg, Architecture: "all"}}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := w.db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

// refresher is a Refresher on w whose "pipeline run" records appserver-2
// with kiln-demo 1.0-2 and moves prod to it, as the pipeline's stages
// would, and whose rollouts succeed; it records what it was asked.
func (w *world) refresher(t *testing.T) (*Refresher, *[]string, *[]kiln.RolloutRequest, *bytes.Buffer) {
	var started []string
	var rolled []kiln.RolloutRequest
	var progress bytes.Buffer
	rf := &Refresher{Plan: w.ref, Runs: w.db, Progress: &progress,
		StartRuns: func(ctx context.Context, image, trigger string) ([]*kiln.Run, error) {
			started = append(started, image+": "+trigger)
			run, _, err := w.db.EnqueueRun(ctx, &kiln.NewRun{Image: image, Estate: "/estate", Trigger: trigger, Stages: []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}}})
			return []*kiln.Run{run}, err
		},
		Wait: func(ctx context.Context, ids []int64) error {
			run, err := w.db.ClaimRun(ctx, "test:1")
			if err != nil || run == nil || run.ID != ids[0] {
				t.Fatalf("claim run %v: %v %v", ids, run, err)
			}
			v := w.version(t, "1.0-2")
			if _, err := w.db.Promote(ctx, v.Ref(), "prod", "", "pipeline"); err != nil {
				return err
			}
			ref := v.Ref()
			if err := w.db.UpdateStage(ctx, run.ID, "test:1", 0, kiln.Stage{Name: "build", Kind: kiln.StageBuild, Status: kiln.StagePassed}, &ref); err != nil {
				return err
			}
			return w.db.FinishRun(ctx, run.ID, "test:1", kiln.RunSucceeded, "")
		},
		Roll: func(_ context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
			rolled = append(rolled, req)
			return &kiln.Rollout{Service: req.Service, State: kiln.RolloutSucceeded}, nil
		},
	}
	return rf, &started, &rolled, &progress
}

// TestRefreshMakesTheFix: no version has kiln-demo 1.0-2, so the plan is
// blocked with NeedsRun; applying starts the image's run, waits for it
// (here the "run" records appserver-2 with the fix and moves prod, as the
// pipeline's stages would), plans again and rolls web out to it; the
// instance outside services is listed with the commands that replace it.
func TestRefreshMakesTheFix(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	opts := rollout.RefreshOptions{Advisory: "OSV-DEMO-1", Environment: "prod"}

	plan, err := w.ref.Plan(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Items) != 1 || !plan.Items[0].NeedsRun || !plan.Items[0].To.IsZero() || !strings.Contains(plan.Items[0].Blocked, "no version of appserver has the fix of OSV-DEMO-1") {
		t.Fatalf("plan before the fix: %+v; want web blocked, a run needed", plan.Items[0])
	}

	rf, started, rolled, progress := w.refresher(t)
	out, err := rf.Refresh(ctx, opts, true)
	if err != nil {
		t.Fatalf("refresh: %v\n%s", err, progress.String())
	}
	if len(*started) != 1 || !strings.HasPrefix((*started)[0], "appserver: refresh: OSV-DEMO-1: 3 instance(s) of web") {
		t.Errorf("runs started: %q", *started)
	}
	if len(*rolled) != 1 || (*rolled)[0].Service != "web" || (*rolled)[0].To.String() != "appserver-2" {
		t.Errorf("rollouts: %+v; want web to appserver-2", *rolled)
	}
	if len(out.Runs) != 1 || out.Runs[0].Status != kiln.RunSucceeded || !strings.Contains(progress.String(), "succeeded, appserver-2") {
		t.Errorf("runs %+v, progress:\n%s", out.Runs, progress.String())
	}
	if len(out.Loose) != 1 || out.Loose[0].Name != "batch-0" || out.Loose[0].To.String() != "appserver-2" ||
		!strings.Contains(out.Loose[0].Command, "kiln instance launch appserver-2 --env prod") || !strings.Contains(out.Loose[0].Command, "kiln instance destroy batch-0") {
		t.Errorf("loose instances: %+v", out.Loose)
	}
}

// TestRefreshRunWithoutFix: the run ends without a version that has the
// fix (the mirror has none yet); nothing is rolled out and the item says
// what the run did.
func TestRefreshRunWithoutFix(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	rf := &Refresher{Plan: w.ref, Runs: w.db,
		StartRuns: func(ctx context.Context, image, trigger string) ([]*kiln.Run, error) {
			run, _, err := w.db.EnqueueRun(ctx, &kiln.NewRun{Image: image, Estate: "/estate", Trigger: trigger, Stages: []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}}})
			return []*kiln.Run{run}, err
		},
		Wait: func(ctx context.Context, ids []int64) error {
			if _, err := w.db.ClaimRun(ctx, "test:1"); err != nil {
				return err
			}
			return w.db.FinishRun(ctx, ids[0], "test:1", kiln.RunFailed, "build: apt cannot reach the mirror")
		},
		Roll: func(context.Context, kiln.RolloutRequest) (*kiln.Rollout, error) {
			t.Fatal("no rollout may start without a fixed version")
			return nil, nil
		},
	}
	out, err := rf.Refresh(ctx, rollout.RefreshOptions{Advisory: "OSV-DEMO-1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	if it := out.Items[0]; !it.To.IsZero() || !strings.Contains(it.Blocked, "failed: build: apt cannot reach the mirror") {
		t.Errorf("item after a failed run: %+v", it)
	}
	if out.Loose[0].Command != "" {
		t.Errorf("loose instance with no fixed version got a command: %+v", out.Loose[0])
	}
}

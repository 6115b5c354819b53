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
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/rollout"
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

// policyWorld is TestAutoRefresh's world with web's policy set to what
// set does, the autopilot on it with the world's clock, and rollouts that
// are recorded in the store as a real one is (so the rollout limit counts
// them) and move web's members to the version.
func policyWorld(t *testing.T, start time.Time, set func(s *kiln.Service)) (*world, *Auto, *[]string, *[]kiln.RolloutRequest) {
	t.Helper()
	ctx := context.Background()
	w := newWorld(t)
	w.set(start)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(autoEstate), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := w.db.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	set(s)
	if err := w.db.UpdateService(ctx, s); err != nil {
		t.Fatal(err)
	}
	rf, started, rolled, _ := w.refresher(t)
	rf.Policy, rf.Clock = &rollout.Policy{Services: w.db, Rollouts: w.db}, w.clock
	fake := rf.Roll
	rf.Roll = func(ctx context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
		if _, err := fake(ctx, req); err != nil {
			return nil, err
		}
		return w.rollout(ctx, t, req.Service, req.To), nil
	}
	a := &Auto{
		Estates:    func(context.Context) []pipeline.Estate { return []pipeline.Estate{{Dir: dir}} },
		LoadEstate: loadEstate, Fleet: w.db, Registry: w.db, Advisories: w.db, Audit: w.db, Services: w.db,
		Refresher: func(pipeline.Estate) *Refresher { return rf }, Clock: w.clock,
	}
	return w, a, started, rolled
}

// rollout records a succeeded rollout of service to to, started now by
// ctx's actor, and moves the service's active members to it.
func (w *world) rollout(ctx context.Context, t *testing.T, service string, to kiln.VersionRef) *kiln.Rollout {
	t.Helper()
	r := &kiln.Rollout{Service: service, To: to}
	if err := w.db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	r.State = kiln.RolloutSucceeded
	if err := w.db.UpdateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	ms, err := w.db.ListMembers(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		m.Version = to
		if err := w.db.PutMember(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.db.SetServiceVersion(ctx, service, to); err != nil {
		t.Fatal(err)
	}
	return r
}

// status is what `kiln service show` and the API say of the service at
// the world's now.
func (w *world) status(t *testing.T, service string) *rollout.FollowStatus {
	t.Helper()
	ctx := context.Background()
	s, err := w.db.FindService(ctx, service)
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&rollout.Follower{Services: w.db, Rollouts: w.db, Channels: w.db, Pauses: w.db, Clock: w.clock}).Status(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func lastAudit(t *testing.T, w *world) *kiln.AuditEntry {
	t.Helper()
	es, err := w.db.ListAudit(context.Background(), kiln.AuditFilter{Target: "environment prod"})
	if err != nil || len(es) == 0 {
		t.Fatalf("audit: %d entries, %v", len(es), err)
	}
	return es[len(es)-1]
}

// TestAutoRefreshWaitsForWindow: web (following nothing, so only the
// autopilot rolls it) may be rolled out Monday to Friday 02:00-05:00 UTC.
// On Monday at noon the autopilot builds the fix — the window governs
// rollouts, not builds — but holds the rollout back: the audit and `kiln
// service show` say it waits for the window and when it opens. A check
// before the window opens does nothing, and the wait is not dropped by
// the no-retry bookkeeping: the first check after 02:00 on Tuesday rolls
// web out, as the autopilot.
func TestAutoRefreshWaitsForWindow(t *testing.T) {
	ctx := context.Background()
	monNoon := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC) // a Monday
	w, a, started, rolled := policyWorld(t, monNoon, func(s *kiln.Service) {
		s.Follow = kiln.FollowNone
		win, err := kiln.ParseUpdateWindow("window", "mon-fri 02:00-05:00 UTC")
		if err != nil {
			t.Fatal(err)
		}
		s.Policy.Window = win
	})
	opens := time.Date(2026, 12, 8, 2, 0, 0, 0, time.UTC)

	if acted, err := a.Check(ctx, "advisory source demo synced"); err != nil || len(acted) != 1 {
		t.Fatalf("outside the window: acted on %+v (%v); want OSV-DEMO-1", acted, err)
	}
	if len(*started) != 1 || len(*rolled) != 0 {
		t.Fatalf("outside the window: runs %q, rollouts %+v; want the fix built and no rollout", *started, *rolled)
	}
	if e := lastAudit(t, w); e.Action != "autopilot.refresh.done" ||
		!strings.Contains(e.Detail, "web → appserver-2 held back: waiting for its update window (mon,tue,wed,thu,fri 02:00-05:00 UTC), which opens 2026-12-08T02:00:00Z") {
		t.Errorf("audit after the held refresh: %+v", e)
	}
	s, err := w.db.FindService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Pending; p == nil || p.To.String() != "appserver-2" || p.Why != "refresh for OSV-DEMO-1" || p.By != Actor || !p.Since.Equal(monNoon) {
		t.Fatalf("web's pending rollout: %+v", p)
	}
	st := w.status(t, "web")
	if st.State != rollout.FollowWaitingWindow || !st.Until.Equal(opens) ||
		!strings.Contains(st.Detail, "the autopilot's refresh for OSV-DEMO-1 to appserver-2 (decided 2026-12-07T12:00:00Z) is waiting for its update window") {
		t.Errorf("status outside the window: %+v", st)
	}

	if at := a.Wake(); !at.Equal(opens) {
		t.Errorf("Wake() = %s; want the window's opening %s, for kiln serve to check then", at, opens)
	}

	// A minute before the window opens: nothing, and nothing dropped.
	w.set(opens.Add(-time.Minute))
	if acted, err := a.Check(ctx, "periodic check"); err != nil || len(acted) != 0 || len(*rolled) != 0 {
		t.Fatalf("before the window: acted on %+v (%v), rollouts %+v; want nothing", acted, err, *rolled)
	}
	// The window is open, the autopilot has not looked yet.
	w.set(opens)
	if st := w.status(t, "web"); st.State != rollout.FollowPending || !strings.Contains(st.Detail, "may start now; the autopilot starts it at its next check") {
		t.Errorf("status when the window opens: %+v", st)
	}
	w.set(opens.Add(30 * time.Second))
	if acted, err := a.Check(ctx, "periodic check"); err != nil || len(acted) != 1 {
		t.Fatalf("in the window: acted on %+v (%v); want OSV-DEMO-1 again", acted, err)
	}
	if len(*started) != 1 || len(*rolled) != 1 || (*rolled)[0].Service != "web" || (*rolled)[0].To.String() != "appserver-2" {
		t.Fatalf("in the window: runs %q, rollouts %+v; want web to appserver-2 and no second run", *started, *rolled)
	}
	rs, err := w.db.ListRollouts(ctx, "web", 1)
	if err != nil || len(rs) != 1 || rs[0].StartedBy != Actor || !rs[0].StartedAt.Equal(opens.Add(30*time.Second)) {
		t.Fatalf("web's rollouts: %+v %v", rs, err)
	}
	if e := lastAudit(t, w); !strings.Contains(e.Detail, "web → appserver-2 succeeded") {
		t.Errorf("audit after the window opened: %+v", e)
	}
	if st := w.status(t, "web"); st.State != rollout.FollowNotFollowing {
		t.Errorf("status after the rollout: %+v; want not-following (nothing pending)", st)
	}
	if at := a.Wake(); !at.IsZero() {
		t.Errorf("Wake() = %s after the rollout; want zero", at)
	}
	if s, _ := w.db.FindService(ctx, "web"); s.Pending != nil {
		t.Errorf("pending rollout kept after it started: %+v", s.Pending)
	}
}

// TestAutoRefreshWaitsForLimit: prod allows one rollout an hour, and
// another service's rollout began 10 minutes ago. The autopilot holds
// web's rollout back until that one leaves the hour (`kiln service show`
// says so, web follows its channel here), then rolls it out.
func TestAutoRefreshWaitsForLimit(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	limit, err := kiln.ParseRolloutLimit("limit", "1/1h")
	if err != nil {
		t.Fatal(err)
	}
	w, a, _, rolled := policyWorld(t, t0.Add(-10*time.Minute), func(s *kiln.Service) { s.Policy.Limit = limit })
	if err := w.db.CreateService(ctx, &kiln.Service{Name: "api", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18091",
		Policy: kiln.RolloutPolicy{Limit: limit}}); err != nil {
		t.Fatal(err)
	}
	w.rollout(kiln.WithActor(ctx, "local:ops"), t, "api", kiln.VersionRef{Image: "appserver", Number: 1})
	frees := t0.Add(50 * time.Minute)

	w.set(t0)
	if acted, err := a.Check(ctx, "tick"); err != nil || len(acted) != 1 || len(*rolled) != 0 {
		t.Fatalf("over the limit: acted on %+v (%v), rollouts %+v; want a refresh and no rollout", acted, err, *rolled)
	}
	if e := lastAudit(t, w); !strings.Contains(e.Detail, "web → appserver-2 held back: waiting: 1 rollouts in prod within 1h (limit 1/1h); the next may start 2026-12-07T12:50:00Z") {
		t.Errorf("audit: %+v", e)
	}
	// web follows prod's channel, which the fix's run moved: the status
	// is the follower's, and the wait is the same decision.
	if st := w.status(t, "web"); st.State != rollout.FollowWaitingLimit || !st.Until.Equal(frees) || !strings.HasPrefix(st.Detail, "appserver-2 is waiting: 1 rollouts in prod") {
		t.Errorf("status over the limit: %+v", st)
	}
	w.set(frees.Add(-time.Second))
	if acted, err := a.Check(ctx, "tick"); err != nil || len(acted) != 0 || len(*rolled) != 0 {
		t.Fatalf("before the limit frees: acted on %+v (%v), rollouts %+v", acted, err, *rolled)
	}
	w.set(frees)
	if acted, err := a.Check(ctx, "tick"); err != nil || len(acted) != 1 || len(*rolled) != 1 || (*rolled)[0].To.String() != "appserver-2" {
		t.Fatalf("once the limit frees: acted on %+v (%v), rollouts %+v; want web to appserver-2", acted, err, *rolled)
	}
	// And the rollout just started counts: api (same limit) may not
	// follow the channel for an hour.
	if st := w.status(t, "api"); st.State != rollout.FollowWaitingLimit {
		t.Errorf("api after web's rollout: %+v; want waiting-limit", st)
	}
}

// TestRefreshByAPersonIgnoresWindow: `kiln fleet refresh --apply` typed
// by a person (a Refresher without Policy) rolls out outside the window,
// as `kiln rollout` does: an operator's decision.
func TestRefreshByAPersonIgnoresWindow(t *testing.T) {
	ctx := context.Background()
	w, _, _, _ := policyWorld(t, time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), func(s *kiln.Service) {
		s.Policy.Window, _ = kiln.ParseUpdateWindow("window", "sat 02:00-03:00 UTC")
	})
	rf, _, rolled, _ := w.refresher(t)
	out, err := rf.Refresh(kiln.WithActor(ctx, "local:ops"), rollout.RefreshOptions{Advisory: "OSV-DEMO-1", Environment: "prod"}, true)
	if err != nil || len(*rolled) != 1 || out.Items[0].Wait != nil {
		t.Fatalf("a person's refresh outside the window: %v, rollouts %+v, items %+v", err, *rolled, out.Items)
	}
}

package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/kiln-project/kiln"
)

// TestFleetHistory: a day's snapshot replaces that day's rows as a whole,
// listing filters by environment and first day, and pruning drops the
// days before the cutoff only.
func TestFleetHistory(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		day := func(n int) time.Time { return time.Date(2026, 3, n, 0, 0, 0, 0, time.UTC) }
		count := func(d int, env string, n int) *kiln.FleetCount {
			return &kiln.FleetCount{Day: day(d), Environment: env, Instances: n, OnLatest: n / 2, OverAge: n / 4,
				Exposed: kiln.ExposureCounts{Low: n / 3, Medium: n / 5, High: n / 7, Critical: n / 11}}
		}
		wantCode(t, e.RecordSnapshot(ctx, time.Time{}, nil), kiln.EINVALID)
		for d := 1; d <= 3; d++ {
			if err := e.RecordSnapshot(ctx, day(d).Add(13*time.Hour), []*kiln.FleetCount{count(d, "prod", 100*d), count(d, "dev", 10*d)}); err != nil {
				t.Fatal(err)
			}
		}
		// Recording day 3 again replaces it: dev emptied.
		if err := e.RecordSnapshot(ctx, day(3), []*kiln.FleetCount{count(3, "prod", 333)}); err != nil {
			t.Fatal(err)
		}
		got := must[[]*kiln.FleetCount](t)(e.ListSnapshots(ctx, kiln.HistoryFilter{}))
		want := []*kiln.FleetCount{count(1, "dev", 10), count(1, "prod", 100), count(2, "dev", 20), count(2, "prod", 200), count(3, "prod", 333)}
		if d := cmp.Diff(want, got, cmpopts.IgnoreFields(kiln.FleetCount{}, "RecordedAt")); d != "" {
			t.Errorf("ListSnapshots (-want +got):\n%s", d)
		}
		for _, c := range got {
			if c.RecordedAt.IsZero() {
				t.Errorf("%s %s: no recorded_at", c.Day, c.Environment)
			}
		}
		got = must[[]*kiln.FleetCount](t)(e.ListSnapshots(ctx, kiln.HistoryFilter{Environment: "prod", Since: day(2).Add(5 * time.Hour)}))
		if len(got) != 2 || got[0].Instances != 200 || got[1].Instances != 333 {
			t.Errorf("prod since day 2: %+v", got)
		}
		if n := must[int](t)(e.PruneSnapshots(ctx, day(2))); n != 2 {
			t.Errorf("pruned %d rows, want the 2 of day 1", n)
		}
		if got := must[[]*kiln.FleetCount](t)(e.ListSnapshots(ctx, kiln.HistoryFilter{})); len(got) != 3 || !got[0].Day.Equal(day(2)) {
			t.Errorf("after pruning: %+v", got)
		}
	})
}

// TestRolloutSamples: samples come back in time order with their version
// counts; an unknown rollout is ENOTFOUND; deleting the service takes its
// rollouts' samples along; pruning goes by time.
func TestRolloutSamples(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:test")
		mkImage(t, e.DB, "appserver")
		v1 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		v2 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		if err := e.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 2, Listen: "127.0.0.1:18081"}); err != nil {
			t.Fatal(err)
		}
		r := &kiln.Rollout{Service: "web", From: v1.Ref(), To: v2.Ref()}
		if err := e.CreateRollout(ctx, r); err != nil {
			t.Fatal(err)
		}
		t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
		samples := []*kiln.RolloutSample{
			{Rollout: r.ID, At: t0.Add(2 * time.Second), State: kiln.RolloutRunning, Batch: 1, Requests: 90, Errors: 1, FrontEndPID: 7, HealthPassed: 3,
				Versions: []kiln.VersionCount{{Version: v1.Ref(), Instances: 1}, {Version: v2.Ref(), Instances: 1}}},
			{Rollout: r.ID, At: t0, State: kiln.RolloutRunning, Requests: 10, FrontEndPID: 7,
				Versions: []kiln.VersionCount{{Version: v1.Ref(), Instances: 2}}},
			{Rollout: r.ID, At: t0.Add(4 * time.Second), State: kiln.RolloutRollingBack, Batch: 0, Requests: 200, Errors: 40, FrontEndPID: 7, HealthFailed: 2,
				Versions: []kiln.VersionCount{}},
		}
		for _, s := range samples {
			if err := e.RecordRolloutSample(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
		wantCode(t, e.RecordRolloutSample(ctx, &kiln.RolloutSample{Rollout: r.ID + 100, State: kiln.RolloutRunning}), kiln.ENOTFOUND)
		got := must[[]*kiln.RolloutSample](t)(e.RolloutSamples(ctx, r.ID))
		want := []*kiln.RolloutSample{samples[1], samples[0], samples[2]}
		if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("RolloutSamples (-want +got):\n%s", d)
		}
		if n := must[int](t)(e.PruneRolloutSamples(ctx, t0.Add(time.Second))); n != 1 {
			t.Errorf("pruned %d samples, want 1", n)
		}
		r.State = kiln.RolloutRolledBack
		if err := e.UpdateRollout(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := e.DeleteService(ctx, "web"); err != nil {
			t.Fatal(err)
		}
		if got := must[[]*kiln.RolloutSample](t)(e.RolloutSamples(ctx, r.ID)); len(got) != 0 {
			t.Errorf("%d samples left after the service was deleted", len(got))
		}
	})
}

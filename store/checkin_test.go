package store

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

// countsDrift compares fleet_counts with the instances counted one by one
// and returns the differences ("key: counts N, instances M").
func countsDrift(t *testing.T, e *env) []string {
	t.Helper()
	read := func(q string) map[string]int64 {
		rows, err := e.raw.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		m := map[string]int64{}
		for rows.Next() {
			var img, env, state string
			var num int
			var n int64
			if err := rows.Scan(&img, &num, &env, &state, &n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				m[fmt.Sprintf("%s-%d/%s/%s", img, num, env, state)] = n
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return m
	}
	counts := read(`SELECT image, number, environment, state, instances FROM fleet_counts`)
	actual := read(`SELECT image, number, environment, state, COUNT(*) FROM instances GROUP BY image, number, environment, state`)
	var drift []string
	for k, n := range counts {
		if actual[k] != n {
			drift = append(drift, fmt.Sprintf("%s: counts %d, instances %d", k, n, actual[k]))
		}
	}
	for k, n := range actual {
		if _, ok := counts[k]; !ok {
			drift = append(drift, fmt.Sprintf("%s: counts 0, instances %d", k, n))
		}
	}
	return drift
}

func checkin(id, host, env, image string, n int) *kiln.Checkin {
	return &kiln.Checkin{InstanceID: id, Hostname: host, Environment: env,
		Release: map[string]string{"image": image, "version": fmt.Sprint(n)}}
}

// TestCheckInCountsExact runs batched check-ins (new instances, repeats,
// moves between versions and environments, the same id twice in a batch,
// unknown versions), concurrent batches, deregistration, state changes and
// mark-lost, and checks after each step that fleet_counts equals the
// instances counted one by one.
func TestCheckInCountsExact(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		exact := func(step string) {
			t.Helper()
			if d := countsDrift(t, e); len(d) > 0 {
				t.Fatalf("after %s, fleet_counts drifted:\n%v", step, d)
			}
		}
		mkImage(t, e.DB, "appserver")
		for range 3 {
			mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		}
		var batch []*kiln.Checkin
		for i := range 50 {
			batch = append(batch, checkin(fmt.Sprintf("i-%02d", i), fmt.Sprintf("web-%02d", i%40), []string{"dev", "prod"}[i%2], "appserver", 1))
		}
		res := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, batch))
		for i, r := range res {
			if !r.Created || r.Instance.ID != batch[i].InstanceID {
				t.Fatalf("check-in %d: %+v", i, r)
			}
		}
		// Hostnames web-00…web-09 come twice: the second of each is named
		// after its id.
		if res[40].Instance.Name != "i-40" || res[39].Instance.Name != "web-39" {
			t.Errorf("names: %s, %s", res[40].Instance.Name, res[39].Instance.Name)
		}
		exact("50 new instances in one batch")

		// Repeats (last-seen only), moves to other versions and
		// environments, an unknown version, a lost→running return, and the
		// same instance twice in one batch.
		must[*kiln.Instance](t)(e.SetInstanceState(ctx, "i-03", kiln.InstanceLost, "test"))
		must[*kiln.Instance](t)(e.SetInstanceState(ctx, "i-04", kiln.InstanceDegraded, "test"))
		exact("state changes")
		before := e.clock.Now()
		batch = []*kiln.Checkin{
			checkin("i-00", "", "", "appserver", 1),        // nothing but last-seen
			checkin("i-01", "", "staging", "appserver", 2), // version and environment
			checkin("i-02", "", "", "appserver", 9),        // unknown version
			checkin("i-03", "", "", "appserver", 1),        // lost comes back
			checkin("i-04", "", "", "appserver", 3),        // degraded stays degraded
			checkin("i-05", "", "", "appserver", 2),
			checkin("i-05", "", "", "appserver", 3), // twice: the last wins
			checkin("i-99", "web-99", "prod", "appserver", 3),
		}
		batch[0].Labels = map[string]string{}
		res = must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, batch))
		if !res[2].Unknown || res[3].Instance.State != kiln.InstanceRunning || res[4].Instance.State != kiln.InstanceDegraded ||
			res[5].Instance.Version.Number != 2 || res[6].Instance.Version.Number != 3 || !res[7].Created {
			t.Errorf("results: %+v %+v %+v %+v %+v", res[2], res[3], res[4], res[6], res[7])
		}
		for _, id := range []string{"i-00", "i-05", "i-01"} {
			got := must[*kiln.Instance](t)(e.FindInstance(ctx, id))
			if !got.LastSeenAt.After(before) {
				t.Errorf("%s last seen %s, not after the check-in began (%s)", id, got.LastSeenAt, before)
			}
		}
		if got := must[*kiln.Instance](t)(e.FindInstance(ctx, "i-01")); got.Version != ref("appserver", 2) || got.Environment != "staging" {
			t.Errorf("i-01 = %+v", got)
		}
		if got := must[*kiln.Instance](t)(e.FindInstance(ctx, "i-05")); got.Version != ref("appserver", 3) {
			t.Errorf("i-05 = %+v", got)
		}
		exact("moves, repeats, a lost return, a duplicate in the batch")

		// Concurrent batches over the same instances (PostgreSQL runs them
		// side by side; SQLite one after the other).
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var b []*kiln.Checkin
				for i := range 60 {
					b = append(b, checkin(fmt.Sprintf("i-%02d", (i+w*7)%60), "", []string{"dev", "prod", "staging"}[(i+w)%3], "appserver", 1+(i+w)%3))
				}
				if _, err := e.CheckIn(ctx, b); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		exact("concurrent batches")

		// Deregistration, mark-lost, and a lost instance coming back.
		for _, id := range []string{"i-10", "web-11", "i-99"} {
			if err := e.DeleteInstance(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		exact("deregistration")
		seen := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{checkin("i-20", "", "", "appserver", 1)}))[0].Instance.LastSeenAt
		if n := must[int](t)(e.MarkLost(ctx, seen)); n != 57 { // all but i-20
			t.Errorf("MarkLost marked %d", n)
		}
		exact("mark-lost")
		must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{checkin("i-21", "", "", "appserver", 1), checkin("i-22", "", "dev", "appserver", 2)}))
		exact("check-ins after mark-lost")
		// 50 + i-99, + i-50…i-59 from the concurrent batches, − 3 deregistered.
		total := 0
		for _, u := range must[[]*kiln.Usage](t)(e.Usage(ctx, kiln.UsageFilter{})) {
			total += u.Instances
		}
		if total != 58 {
			t.Errorf("usage counts %d instances, want 58: %v", total, usageOf(t, e.DB, kiln.UsageFilter{}))
		}
	})
}

// TestCheckInNameTaken: a batch whose new instance's fallback name is taken
// fails as a conflict and records nothing.
func TestCheckInNameTaken(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		if err := e.CreateInstance(ctx, &kiln.Instance{ID: "i-1", Name: "i-2", Version: ref("appserver", 1)}); err != nil {
			t.Fatal(err)
		}
		// i-2's hostname is free but it is given none: it would be named
		// i-2, which instance i-1 is called.
		_, err := e.CheckIn(ctx, []*kiln.Checkin{checkin("i-2", "", "prod", "appserver", 1)})
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "i-2", "another instance has that name")
		_, total := must2(t)(e.ListInstances(ctx, kiln.InstanceFilter{}))
		if diff := cmp.Diff(1, total); diff != "" {
			t.Errorf("instances (-want +got):\n%s", diff)
		}
	})
}

package rollout

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/store"
)

// TestRefreshPlan plans over a real SQLite store: a service on an old
// version, one tainted instance, an advisory fixed in a version that is
// ready for one image and not yet for another.
func TestRefreshPlan(t *testing.T) {
	ctx := context.Background()
	clock := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	db, err := store.Open(ctx, "", t.TempDir(), nil, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	art := &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("a", 64)}
	for _, img := range []string{"appserver", "worker"} {
		if err := db.CreateImage(ctx, &kiln.Image{Name: img}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: img, Provenance: kiln.Provenance{Artifact: art}})
			if err != nil {
				t.Fatal(err)
			}
			for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
				if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
					t.Fatal(err)
				}
			}
			clock = clock.Add(100 * 24 * time.Hour)
		}
	}
	mk := func(name, img string, port, n int, tainted bool) {
		t.Helper()
		if err := db.CreateService(ctx, &kiln.Service{Name: name, Image: img, Environment: "prod", Replicas: 2, Listen: "127.0.0.1:" + itoa(port)}); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			id := name + "-" + itoa(i)
			ref := kiln.VersionRef{Image: img, Number: n}
			if err := db.CreateInstance(ctx, &kiln.Instance{ID: id, Version: ref, Environment: "prod", Platform: "local"}); err != nil {
				t.Fatal(err)
			}
			if err := db.PutMember(ctx, &kiln.Member{Service: name, InstanceID: id, Version: ref, State: kiln.MemberActive}); err != nil {
				t.Fatal(err)
			}
		}
		if tainted {
			if _, err := db.BreakGlass(ctx, &kiln.BreakGlass{InstanceID: name + "-0", Reason: "INC-1 debugging"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	mk("web", "appserver", 18080, 1, false)
	mk("jobs", "worker", 18081, 2, true)
	if _, err := db.PutAdvisories(ctx, []*kiln.Advisory{{ID: "DSA-1-1", Source: kiln.AdvisoryManual, Summary: "x",
		FixedIn: []kiln.VersionRef{{Image: "appserver", Number: 2}, {Image: "worker", Number: 3}}}}); err != nil {
		t.Fatal(err)
	}
	r := &Refresh{Services: db, Registry: db, Inventory: db, Advisories: db, Fleet: db, Now: func() time.Time { return clock }}

	plan, err := r.Plan(ctx, RefreshOptions{MaxAge: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*RefreshItem{}
	for _, it := range plan.Items {
		got[it.Service] = it
	}
	if it := got["web"]; it == nil || it.To.String() != "appserver-2" || !hasReason(it, "stale") || !hasReason(it, "over age") {
		t.Errorf("web: %+v; want a rollout to appserver-2, stale and over age", it)
	}
	if it := got["jobs"]; it == nil || it.To.String() != "worker-2" || !hasReason(it, "tainted") || hasReason(it, "stale") {
		t.Errorf("jobs: %+v; want worker-2 for the tainted instance only", it)
	}

	plan, err = r.Plan(ctx, RefreshOptions{Advisory: "DSA-1-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range plan.Items {
		switch it.Service {
		case "web":
			if it.To.String() != "appserver-2" || !hasReason(it, "exposed to DSA-1-1") {
				t.Errorf("web with advisory: %+v", it)
			}
		case "jobs":
			if !it.To.IsZero() || !strings.Contains(it.Blocked, "fixed in worker-3") {
				t.Errorf("jobs with advisory: %+v; want blocked, no ready worker has the fix", it)
			}
		}
	}

	// A revoked version is replaced whatever else holds: jobs runs
	// worker-2, revoked now, and goes back to worker-1, the newest ready
	// version left.
	if _, err := db.Revoke(ctx, kiln.VersionRef{Image: "worker", Number: 2}, "CVE-2026-5"); err != nil {
		t.Fatal(err)
	}
	plan, err = r.Plan(ctx, RefreshOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var jobs *RefreshItem
	for _, it := range plan.Items {
		if it.Service == "jobs" {
			jobs = it
		}
	}
	if jobs == nil || jobs.To.String() != "worker-1" || !hasReason(jobs, "worker-2 revoked (CVE-2026-5)") {
		t.Errorf("jobs after worker-2 was revoked: %+v; want a rollout to worker-1 because worker-2 is revoked", jobs)
	}
}

func hasReason(it *RefreshItem, s string) bool {
	for _, r := range it.Reasons {
		if strings.Contains(r, s) {
			return true
		}
	}
	return false
}

func itoa(n int) string { return kiln.VersionRef{Image: "x", Number: n}.String()[2:] }

package fleet

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

// TestBuildSnapshot counts each environment of the small estate with a
// 90-day limit in prod: instances and over age as the report for that
// environment says, on latest ready, and exposure by rank.
func TestBuildSnapshot(t *testing.T) {
	ps := []*kiln.AgePolicy{{Environment: "prod", MaxAge: kiln.AgeOf(90 * 24 * time.Hour)}}
	ranks := map[kiln.VersionRef]int{
		{Image: "appserver", Number: 3}:   rankHigh,
		{Image: "basic-linux", Number: 1}: rankLow,
	}
	got := BuildSnapshot(usage(), ps, ranks, now.Add(5*time.Hour))
	want := []*kiln.FleetCount{
		{Day: now, Environment: "dev", Instances: 3, Exposed: kiln.ExposureCounts{Low: 3}},
		{Day: now, Environment: "prod", Instances: 13, OnLatest: 7, OverAge: 5, Exposed: kiln.ExposureCounts{Low: 5, Medium: 5, High: 5}},
		{Day: now, Environment: "staging", Instances: 2, Exposed: kiln.ExposureCounts{Low: 2, Medium: 2, High: 2}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("BuildSnapshot (-want +got):\n%s", d)
	}
	for _, c := range got {
		var env []*kiln.Usage
		for _, u := range usage() {
			if u.Environment == c.Environment {
				env = append(env, u)
			}
		}
		rep := BuildReport(env, ps, now.Add(5*time.Hour), c.Environment)
		if c.Instances != rep.Instances || c.OverAge != rep.OverAge {
			t.Errorf("%s: snapshot %d instances, %d over age; report %d, %d", c.Environment, c.Instances, c.OverAge, rep.Instances, rep.OverAge)
		}
	}
}

// TestAgeHistogram: with a limit the bins are a sixth of it and the ones
// past it hold what BuildOverage counts; without, round days; unknown
// build times are apart.
func TestAgeHistogram(t *testing.T) {
	d := 24 * time.Hour
	limit := 90 * d
	bins, unknown := AgeHistogram(usage(), now, limit)
	if unknown != 1 {
		t.Errorf("unknown = %d, want 1 (appserver-9)", unknown)
	}
	if len(bins) != 14 || bins[0].To != 15*d || bins[13].To != 210*d {
		t.Fatalf("bins %+v; want 14 of 15 days up to 210", bins)
	}
	past, total := 0, 0
	for _, b := range bins {
		total += b.Instances
		if b.From >= limit {
			past += b.Instances
		}
	}
	over := BuildOverage(usage(), kiln.AgeOf(limit), nil, now, "")
	if past != over.Instances || total != 17 {
		t.Errorf("past the limit %d (overage says %d), total %d (want 17)", past, over.Instances, total)
	}
	if bins[0].Instances != 7 || bins[6].Instances != 7 || bins[13].Instances != 3 {
		t.Errorf("bins %+v", bins)
	}
	// A version exactly at the limit is not past it, nor in a bin past it.
	at := []*kiln.Usage{{Image: "a", Number: 1, Environment: "prod", BuiltAt: now.Add(-limit), Instances: 4}}
	bins, _ = AgeHistogram(at, now, limit)
	if bins[5].Instances != 4 || BuildOverage(at, kiln.AgeOf(limit), nil, now, "").Instances != 0 {
		t.Errorf("at the limit: bins %+v", bins)
	}

	bins, _ = AgeHistogram(usage(), now, 0)
	if bins[0].To != 14*d || len(bins) != 15 {
		t.Errorf("without a limit: %d bins of %s", len(bins), bins[0].To)
	}
	// A fleet far older than its limit still gets at most 40 bins.
	old := []*kiln.Usage{{Image: "a", Number: 1, BuiltAt: now.Add(-3000 * d), Instances: 1}}
	if bins, _ = AgeHistogram(old, now, 30*d); len(bins) > maxAgeBins {
		t.Errorf("%d bins for 3000 days", len(bins))
	}
}

package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

// usageOf flattens Usage rows to "image-n/env:instances/lost/status".
func usageOf(t *testing.T, db *DB, f kiln.UsageFilter) []string {
	t.Helper()
	us := must[[]*kiln.Usage](t)(db.Usage(context.Background(), f))
	var out []string
	for _, u := range us {
		s := u.Ref().String() + "/" + u.Environment + ":" + itoa(u.Instances) + "/" + itoa(u.Lost) + "/" + string(u.Status)
		if !u.Known {
			s += "/unknown"
		}
		if u.LatestReady > 0 {
			s += "/latest=" + itoa(u.LatestReady)
		}
		out = append(out, s)
	}
	return out
}

func itoa(n int) string { return kiln.VersionRef{Image: "x", Number: n}.String()[2:] }

func TestInventory(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		v1 := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		must[*kiln.Version](t)(e.SetStatus(ctx, v1.Ref(), kiln.StatusTested, ""))
		must[*kiln.Version](t)(e.SetStatus(ctx, v1.Ref(), kiln.StatusReady, ""))

		launched := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
		inst := &kiln.Instance{ID: "i-1", Name: "web-1", Version: ref("appserver", 1), Environment: "prod",
			Labels: map[string]string{"team": "payments"}, LaunchedAt: launched, ConfigDigest: "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", ConfigSource: "estate:/e env prod"}
		if err := e.CreateInstance(ctx, inst); err != nil {
			t.Fatal(err)
		}
		got := must[*kiln.Instance](t)(e.FindInstance(ctx, "web-1"))
		want := &kiln.Instance{ID: "i-1", Name: "web-1", Version: ref("appserver", 1), Environment: "prod", Platform: "external",
			State: kiln.InstanceRunning, Labels: map[string]string{"team": "payments"}, LaunchedAt: launched, ConfigDigest: "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", ConfigSource: "estate:/e env prod"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("FindInstance (-want +got):\n%s", diff)
		}

		// Unknown versions are refused, with what exists.
		err := e.CreateInstance(ctx, &kiln.Instance{Version: ref("appserver", 7)})
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "appserver-7", "versions 1 to 2", "--allow-unknown")
		err = e.CreateInstance(ctx, &kiln.Instance{Version: ref("nosuch", 1)})
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "there is no image nosuch")

		// A batch is all or nothing; the bad one is named by where it came from.
		batch := []*kiln.Instance{
			{ID: "i-2", Version: ref("appserver", 2), Environment: "prod"},
			{ID: "i-3", Version: ref("appserver", 9), Environment: "prod"},
		}
		err = e.RegisterInstances(ctx, batch, kiln.RegisterOptions{Where: []string{"hosts.csv:2", "hosts.csv:3"}})
		if kiln.ErrorField(err) != "hosts.csv:3" {
			t.Errorf("error field = %q, want hosts.csv:3 (%v)", kiln.ErrorField(err), err)
		}
		if _, err := e.FindInstance(ctx, "i-2"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Errorf("i-2 was recorded although its batch failed: %v", err)
		}
		batch = []*kiln.Instance{
			{ID: "i-2", Version: ref("appserver", 2), Environment: "prod"},
			{ID: "i-3", Version: ref("appserver", 9), Environment: "staging"},
			{ID: "i-4", Version: ref("appserver", 1), Environment: "staging"},
		}
		if err := e.RegisterInstances(ctx, batch, kiln.RegisterOptions{AllowUnknown: true}); err != nil {
			t.Fatal(err)
		}
		err = e.RegisterInstances(ctx, []*kiln.Instance{{ID: "i-9", Name: "web-1", Version: ref("appserver", 1)}}, kiln.RegisterOptions{})
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "name web-1 is taken by instance i-1")
		err = e.CreateInstance(ctx, &kiln.Instance{ID: "i-1", Version: ref("appserver", 1)})
		wantContains(t, wantCode(t, err, kiln.ECONFLICT), "i-1 is registered already")

		wantUsage := []string{
			"appserver-1/prod:1/0/ready/latest=1",
			"appserver-1/staging:1/0/ready/latest=1",
			"appserver-2/prod:1/0/candidate/latest=1",
			"appserver-9/staging:1/0//unknown/latest=1",
		}
		if diff := cmp.Diff(wantUsage, usageOf(t, e.DB, kiln.UsageFilter{})); diff != "" {
			t.Errorf("usage (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(wantUsage[1:2], usageOf(t, e.DB, kiln.UsageFilter{Environment: "staging", Image: "appserver"})[:1]); diff != "" {
			t.Errorf("usage in staging (-want +got):\n%s", diff)
		}

		// State changes, deletion and check-ins keep the counts exact.
		must[*kiln.Instance](t)(e.SetInstanceState(ctx, "i-4", kiln.InstanceDestroyed, "replaced"))
		if err := e.DeleteInstance(ctx, "i-3"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.DeleteInstance(ctx, "i-3"), kiln.ENOTFOUND)
		res := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{
			{InstanceID: "i-2", Release: map[string]string{"image": "appserver", "version": "1"}, Address: "10.0.0.2"},
			{InstanceID: "i-5", Hostname: "web-1", Environment: "prod", Release: map[string]string{"image": "appserver", "version": "2"}},
			{InstanceID: "i-6", Hostname: "web-6", Environment: "dev", Release: map[string]string{"image": "other", "version": "4"}},
		}))
		if res[0].Created || !res[1].Created || res[1].Instance.Name != "i-5" || res[2].Instance.Name != "web-6" || !res[2].Unknown || res[0].Unknown {
			t.Errorf("check-in results: %+v %+v %+v", res[0], res[1], res[2])
		}
		if i2 := res[0].Instance; i2.Version != ref("appserver", 1) || i2.Environment != "prod" || i2.Address != "10.0.0.2" || i2.LastSeenAt.IsZero() {
			t.Errorf("i-2 after check-in: %+v", i2)
		}
		wantUsage = []string{
			"appserver-1/prod:2/0/ready/latest=1",
			"appserver-2/prod:1/0/candidate/latest=1",
			"other-4/dev:1/0//unknown",
		}
		if diff := cmp.Diff(wantUsage, usageOf(t, e.DB, kiln.UsageFilter{})); diff != "" {
			t.Errorf("usage after check-ins (-want +got):\n%s", diff)
		}

		// Not seen since the cutoff: lost (i-1 was launched before it and
		// never checked in); checking in again brings it back.
		n := must[int](t)(e.MarkLost(ctx, launched.Add(time.Hour)))
		if n != 1 {
			t.Errorf("MarkLost marked %d, want 1 (i-1)", n)
		}
		if got := usageOf(t, e.DB, kiln.UsageFilter{Image: "appserver"})[0]; got != "appserver-1/prod:2/1/ready/latest=1" {
			t.Errorf("usage after MarkLost: %s", got)
		}
		must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{{InstanceID: "i-1", Release: map[string]string{"image": "appserver", "version": "1"}}}))
		if got := must[*kiln.Instance](t)(e.FindInstance(ctx, "i-1")); got.State != kiln.InstanceRunning {
			t.Errorf("i-1 after check-in: %s", got.State)
		}

		list, total := must2(t)(e.ListInstances(ctx, kiln.InstanceFilter{Version: &kiln.VersionRef{Image: "appserver", Number: 1}, Limit: 1}))
		if total != 2 || len(list) != 1 || list[0].ID != "i-2" {
			t.Errorf("drill-down: total %d, %+v", total, list)
		}
		list, total = must2(t)(e.ListInstances(ctx, kiln.InstanceFilter{States: []kiln.InstanceState{kiln.InstanceDestroyed}}))
		if total != 1 || list[0].ID != "i-4" {
			t.Errorf("destroyed: total %d, %+v", total, list)
		}
	})
}

func must2(t *testing.T) func([]*kiln.Instance, int, error) ([]*kiln.Instance, int) {
	return func(l []*kiln.Instance, n int, err error) ([]*kiln.Instance, int) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return l, n
	}
}

func TestAgePolicies(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "alice")
		if err := e.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: 90 * 86400}); err != nil {
			t.Fatal(err)
		}
		if err := e.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "prod", MaxAge: 30 * 86400}); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.SetAgePolicy(ctx, &kiln.AgePolicy{Environment: "dev"}), kiln.EINVALID)
		ps := must[[]*kiln.AgePolicy](t)(e.AgePolicies(ctx))
		if len(ps) != 1 || ps[0].MaxAge != 30*86400 || ps[0].UpdatedBy != "alice" {
			t.Errorf("policies: %+v", ps)
		}
		if err := e.DeleteAgePolicy(ctx, "prod"); err != nil {
			t.Fatal(err)
		}
		wantCode(t, e.DeleteAgePolicy(ctx, "prod"), kiln.ENOTFOUND)
	})
}

func TestAdvisories(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		img := &kiln.Advisory{ID: "KILN-1", Source: kiln.AdvisoryManual, Summary: "openssl",
			FixedIn: []kiln.VersionRef{ref("basic-linux", 2), ref("appserver", 3)}}
		pkg := &kiln.Advisory{ID: "DSA-1-1", Source: kiln.AdvisoryOSV, Modified: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC),
			Packages: []kiln.AffectedPackage{{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed}}}
		if n := must[int](t)(e.PutAdvisories(ctx, []*kiln.Advisory{img, pkg})); n != 2 {
			t.Errorf("created %d, want 2", n)
		}
		before := e.counts(t)
		if n := must[int](t)(e.PutAdvisories(ctx, []*kiln.Advisory{img, pkg})); n != 0 {
			t.Errorf("second import created %d, want 0", n)
		}
		e.unchanged(t, before)
		img.FixedIn = img.FixedIn[:1]
		must[int](t)(e.PutAdvisories(ctx, []*kiln.Advisory{img}))
		got := must[*kiln.Advisory](t)(e.FindAdvisory(ctx, "DSA-1-1"))
		if diff := cmp.Diff(pkg, got); diff != "" {
			t.Errorf("FindAdvisory (-want +got):\n%s", diff)
		}
		_, err := e.FindAdvisory(ctx, "CVE-0")
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "no advisory CVE-0")
		list, total, err := e.ListAdvisories(ctx, kiln.AdvisoryFilter{FixedIn: true})
		if err != nil || total != 1 || len(list[0].FixedIn) != 1 || list[0].FixedIn[0] != ref("basic-linux", 2) {
			t.Errorf("list fixed-in: %d %+v %v", total, list, err)
		}
		list, total, _ = e.ListAdvisories(ctx, kiln.AdvisoryFilter{Package: "openssl"})
		if total != 1 || list[0].ID != "DSA-1-1" {
			t.Errorf("list by package: %d %+v", total, list)
		}
		wantCode(t, func() error {
			_, err := e.PutAdvisories(ctx, []*kiln.Advisory{{ID: "X", Source: "manual"}})
			return err
		}(), kiln.EINVALID)
		if err := e.DeleteAdvisory(ctx, "KILN-1"); err != nil {
			t.Fatal(err)
		}
		_, total, _ = e.ListAdvisories(ctx, kiln.AdvisoryFilter{})
		if total != 1 {
			t.Errorf("after delete: %d advisories", total)
		}
	})
}

func TestManifests(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "basic-linux")
		mkImage(t, e.DB, "appserver")
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{
			Sources: []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"}},
			Packages: []kiln.Package{
				{Name: "libssl3", Version: "3.0.9-1", Architecture: "amd64", Source: "openssl"},
				{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64", Source: "bash", SourceVersion: "5.2.15-2"},
			}}})
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{
			Base:     &kiln.VersionRef{Image: "basic-linux", Number: 1},
			Packages: []kiln.Package{{Name: "openssl", Version: "3.0.9-1", Architecture: "amd64"}}}})
		ms := must[[]*kiln.PackageManifest](t)(e.Manifests(ctx, []string{"openssl"}))
		want := []*kiln.PackageManifest{
			{Version: ref("appserver", 1), Status: kiln.StatusCandidate, Base: &kiln.VersionRef{Image: "basic-linux", Number: 1},
				Packages: []kiln.Package{{Name: "openssl", Version: "3.0.9-1", Architecture: "amd64"}}},
			{Version: ref("basic-linux", 1), Status: kiln.StatusCandidate, Origin: "bookworm@http://deb.debian.org/debian",
				Packages: []kiln.Package{{Name: "libssl3", Version: "3.0.9-1", Architecture: "amd64", Source: "openssl"}}},
		}
		if diff := cmp.Diff(want, ms); diff != "" {
			t.Errorf("Manifests (-want +got):\n%s", diff)
		}
		v := must[*kiln.Version](t)(e.FindVersion(ctx, ref("basic-linux", 1)))
		if v.Provenance.Packages[0].SourceVersion != "5.2.15-2" || v.Provenance.Packages[1].Source != "openssl" {
			t.Errorf("packages read back: %+v", v.Provenance.Packages)
		}
	})
}

// AdvisoriesForPackages reads the whole advisories naming any of many
// packages at once (more than one query's batch of names), each once.
func TestAdvisoriesForPackages(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		both := &kiln.Advisory{ID: "DSA-2-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "openssl", Fixed: "3.0.11-1~deb12u2", Status: kiln.AffectedFixed},
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "zlib", Fixed: "1:1.2.13.dfsg-2", Status: kiln.AffectedFixed}}}
		late := &kiln.Advisory{ID: "DSA-1-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "pkg-0700", Fixed: "2", Status: kiln.AffectedFixed}}}
		other := &kiln.Advisory{ID: "DSA-3-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "bash", Fixed: "5.2.15-2", Status: kiln.AffectedFixed}}}
		must[int](t)(e.PutAdvisories(ctx, []*kiln.Advisory{both, late, other}))
		names := []string{"zlib", "openssl"}
		for i := range 1200 { // three batches; pkg-0700 in the second
			names = append(names, fmt.Sprintf("pkg-%04d", i))
		}
		got, err := e.AdvisoriesForPackages(ctx, names)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]*kiln.Advisory{late, both}, got); diff != "" {
			t.Errorf("AdvisoriesForPackages (-want +got):\n%s", diff)
		}
		if got, err := e.AdvisoriesForPackages(ctx, nil); err != nil || len(got) != 0 {
			t.Errorf("no packages: %+v %v", got, err)
		}
	})
}

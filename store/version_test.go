package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

const (
	digestA = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
	digestB = "sha256:00000000000000000000000000000000000000000000000000000000000000b2"
)

func TestCreateVersionProvenance(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "builder-7")
		mkImage(t, e.DB, "basic-linux")
		mkImage(t, e.DB, "appserver")
		base := mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux"})
		first := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		if base.Number != 1 || first.Number != 1 || first.Name != "appserver-1" {
			t.Fatalf("numbers: basic-linux %d, appserver %d (%s); want 1, 1 (appserver-1)", base.Number, first.Number, first.Name)
		}

		started := time.Date(2026, 1, 1, 10, 0, 0, 123456789, time.UTC)
		nv := &kiln.NewVersion{
			Image:  "appserver",
			SemVer: "1.0.4",
			Tags:   kiln.Tags{"team": "payments", "cost-center": "42"},
			Provenance: kiln.Provenance{
				Method: kiln.MethodReheat,
				Parent: &kiln.VersionRef{Image: "appserver", Number: 1},
				Base:   &kiln.VersionRef{Image: "basic-linux", Number: 1},
				Sources: []kiln.Source{
					{Kind: kiln.SourceOrigin, Ref: "debian:bookworm@deb.debian.org", Digest: digestA},
					{Kind: kiln.SourceDefinition, Ref: "images/appserver.hcl"},
					{Kind: kiln.SourceConfig, Ref: "git:4b825dc", Digest: digestB},
				},
				Packages: []kiln.Package{
					{Name: "nginx", Version: "1.22.1-9", Architecture: "amd64"},
					{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "amd64"},
					{Name: "libc6", Version: "2.36-9+deb12u4", Architecture: "i386"},
					{Name: "tzdata", Version: "2024a-0+deb12u1", Architecture: "all"},
				},
				Artifact:   &kiln.Artifact{Ref: "local:" + digestB, Digest: digestB, Size: 123456789},
				BuiltBy:    "worker-1",
				StartedAt:  started,
				FinishedAt: started.Add(12 * time.Second),
			},
		}
		v, err := e.CreateVersion(ctx, nv)
		if err != nil {
			t.Fatal(err)
		}
		if v.Number != 2 || v.Name != "appserver-2" || v.Status != kiln.StatusCandidate || v.ID == 0 {
			t.Fatalf("created %+v; want appserver-2, candidate", v)
		}
		wantTags := kiln.Tags{"team": "payments", "cost-center": "42", "Name": "appserver", "Version": "2", "Release_Status": "candidate"}
		if diff := cmp.Diff(wantTags, v.Tags); diff != "" {
			t.Errorf("tags (-want +got):\n%s", diff)
		}
		if v.FullSemVer() != "1.0.4-"+v.CreatedAt.Format(kiln.BuildStampLayout) {
			t.Errorf("FullSemVer = %q", v.FullSemVer())
		}

		got := must[*kiln.Version](t)(e.FindVersion(ctx, ref("appserver", 2)))
		// Packages come back sorted by name and architecture.
		want := *v
		want.Provenance.Packages = []kiln.Package{nv.Provenance.Packages[1], nv.Provenance.Packages[2], nv.Provenance.Packages[0], nv.Provenance.Packages[3]}
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("FindVersion differs from CreateVersion's result (-created +found):\n%s", diff)
		}
		if !got.Provenance.StartedAt.Equal(started.Truncate(time.Microsecond)) {
			t.Errorf("StartedAt = %v, want %v", got.Provenance.StartedAt, started)
		}

		hs := must[[]*kiln.HistoryEntry](t)(e.History(ctx, ref("appserver", 2)))
		var fields []string
		for _, h := range hs {
			fields = append(fields, h.Field+":"+h.From+"→"+h.To)
			if h.Actor != "builder-7" || !h.Time.Equal(v.CreatedAt) || h.Version != ref("appserver", 2) {
				t.Errorf("history entry %+v: want actor builder-7, time %v", h, v.CreatedAt)
			}
		}
		wantFields := []string{"status:→candidate", "tag:cost-center:→42", "tag:team:→payments"}
		if diff := cmp.Diff(wantFields, fields); diff != "" {
			t.Errorf("creation history (-want +got):\n%s", diff)
		}

		img := must[*kiln.Image](t)(e.FindImage(ctx, "appserver"))
		if img.LatestNumber != 2 {
			t.Errorf("LatestNumber = %d, want 2", img.LatestNumber)
		}
	})
}

// TestCreateVersionFailsWhole checks that a refused CreateVersion records
// nothing: no rows, and no version number used up.
func TestCreateVersionFailsWhole(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "basic-linux")
		mkImage(t, e.DB, "appserver")
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver", Tags: kiln.Tags{"a": "b"}})
		before := e.counts(t)

		msg := wantCode(t, func() error { _, err := e.CreateVersion(ctx, &kiln.NewVersion{Image: "nginx"}); return err }(), kiln.ENOTFOUND)
		wantContains(t, msg, "image nginx does not exist", "kiln image create nginx")

		_, err := e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Tags: kiln.Tags{"x": "y"},
			Provenance: kiln.Provenance{Method: kiln.MethodReheat, Parent: &kiln.VersionRef{Image: "appserver", Number: 9}}})
		msg = wantCode(t, err, kiln.ENOTFOUND)
		wantContains(t, msg, "parent version appserver-9 does not exist", "kiln version list appserver")
		if f := kiln.ErrorField(err); f != "parent" {
			t.Errorf("field = %q, want parent", f)
		}

		_, err = e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver",
			Provenance: kiln.Provenance{Base: &kiln.VersionRef{Image: "basic-linux", Number: 1}, Packages: []kiln.Package{{Name: "a", Version: "1"}}}})
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "base version basic-linux-1 does not exist")
		if f := kiln.ErrorField(err); f != "base" {
			t.Errorf("field = %q, want base", f)
		}

		_, err = e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver",
			Provenance: kiln.Provenance{Packages: []kiln.Package{{Name: "a", Version: "1", Architecture: "amd64"}, {Name: "a", Version: "2", Architecture: "amd64"}}}})
		wantContains(t, wantCode(t, err, kiln.EINVALID), "listed twice")

		_, err = e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Tags: kiln.Tags{"Release_Status": "ready"}})
		wantCode(t, err, kiln.EINVALID)

		e.unchanged(t, before)
		if v := mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"}); v.Number != 2 {
			t.Errorf("after failed calls the next number is %d, want 2 (no gap)", v.Number)
		}
	})
}

func TestFindVersionNotFound(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "appserver")
		msg := wantCode(t, func() error { _, err := e.FindVersion(ctx, ref("appserver", 1)); return err }(), kiln.ENOTFOUND)
		wantContains(t, msg, "appserver-1 does not exist", "no versions yet")
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		mkVersion(t, e.DB, &kiln.NewVersion{Image: "appserver"})
		msg = wantCode(t, func() error { _, err := e.FindVersion(ctx, ref("appserver", 7)); return err }(), kiln.ENOTFOUND)
		wantContains(t, msg, "appserver-7 does not exist", "versions 1 to 2", "kiln version list appserver")
		msg = wantCode(t, func() error { _, err := e.FindVersion(ctx, ref("nginx", 1)); return err }(), kiln.ENOTFOUND)
		wantContains(t, msg, "image nginx does not exist", "kiln image create nginx")
		msg = wantCode(t, func() error { _, err := e.History(ctx, ref("appserver", 3)); return err }(), kiln.ENOTFOUND)
		wantContains(t, msg, "appserver-3 does not exist")
	})
}

// seedList makes basic-linux 1–3 and appserver 1–4 with statuses and tags:
//
//	basic-linux-1 ready, -2 failed, -3 tested
//	appserver-1 ready (team=web), -2 deprecated, -3 tested (team=web), -4 candidate (team=db)
func seedList(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	mkImage(t, e.DB, "basic-linux")
	mkImage(t, e.DB, "appserver")
	statuses := map[string][][]kiln.Status{
		"basic-linux": {{kiln.StatusTested, kiln.StatusReady}, {kiln.StatusFailed}, {kiln.StatusTested}},
		"appserver":   {{kiln.StatusTested, kiln.StatusReady}, {kiln.StatusTested, kiln.StatusReady, kiln.StatusDeprecated}, {kiln.StatusTested}, nil},
	}
	tags := map[string]kiln.Tags{"appserver-1": {"team": "web"}, "appserver-3": {"team": "web"}, "appserver-4": {"team": "db"}}
	for _, image := range []string{"basic-linux", "appserver"} {
		for i, moves := range statuses[image] {
			v := mkVersion(t, e.DB, &kiln.NewVersion{Image: image, Tags: tags[ref(image, i+1).String()]})
			for _, s := range moves {
				if _, err := e.SetStatus(ctx, v.Ref(), s, "seed"); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}

func names(vs []*kiln.Version) string {
	var s []string
	for _, v := range vs {
		s = append(s, v.Name)
	}
	return strings.Join(s, " ")
}

func TestListVersions(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		seedList(t, e)
		for _, tc := range []struct {
			name  string
			f     kiln.VersionFilter
			want  string
			total int
		}{
			{"all", kiln.VersionFilter{}, "appserver-4 appserver-3 appserver-2 appserver-1 basic-linux-3 basic-linux-2 basic-linux-1", 7},
			{"image", kiln.VersionFilter{Image: "basic-linux"}, "basic-linux-3 basic-linux-2 basic-linux-1", 3},
			{"statuses", kiln.VersionFilter{Status: []kiln.Status{kiln.StatusFailed, kiln.StatusDeprecated}}, "appserver-2 basic-linux-2", 2},
			{"min tested", kiln.VersionFilter{MinStatus: kiln.StatusTested}, "appserver-3 appserver-1 basic-linux-3 basic-linux-1", 4},
			{"min ready of image", kiln.VersionFilter{Image: "appserver", MinStatus: kiln.StatusReady}, "appserver-1", 1},
			{"free tag", kiln.VersionFilter{Tags: kiln.Tags{"team": "web"}}, "appserver-3 appserver-1", 2},
			{"tag and min status", kiln.VersionFilter{Tags: kiln.Tags{"team": "web"}, MinStatus: kiln.StatusReady}, "appserver-1", 1},
			{"system tags", kiln.VersionFilter{Tags: kiln.Tags{"Name": "basic-linux", "Release_Status": "Tested"}}, "basic-linux-3", 1},
			{"Version tag", kiln.VersionFilter{Tags: kiln.Tags{"Version": "2"}}, "appserver-2 basic-linux-2", 2},
			{"no match", kiln.VersionFilter{Tags: kiln.Tags{"team": "nobody"}}, "", 0},
			{"page", kiln.VersionFilter{Limit: 2, Offset: 1}, "appserver-3 appserver-2", 7},
			{"offset only", kiln.VersionFilter{Offset: 5}, "basic-linux-2 basic-linux-1", 7},
			{"past the end", kiln.VersionFilter{Limit: 10, Offset: 50}, "", 7},
		} {
			t.Run(tc.name, func(t *testing.T) {
				vs, total, err := e.ListVersions(ctx, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if got := names(vs); got != tc.want || total != tc.total {
					t.Errorf("got %q (total %d), want %q (total %d)", got, total, tc.want, tc.total)
				}
			})
		}
		vs := must[[]*kiln.Version](t)(func() ([]*kiln.Version, error) {
			vs, _, err := e.ListVersions(ctx, kiln.VersionFilter{Image: "appserver", Limit: 1})
			return vs, err
		}())
		if v := vs[0]; v.Tags["team"] != "db" || v.Tags["Name"] != "appserver" || v.Tags["Version"] != "4" || v.Tags["Release_Status"] != "candidate" {
			t.Errorf("listed tags = %v", v.Tags)
		}
		_, _, err := e.ListVersions(ctx, kiln.VersionFilter{Image: "nginx"})
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "kiln image create nginx")
		_, _, err = e.ListVersions(ctx, kiln.VersionFilter{MinStatus: kiln.StatusFailed})
		wantCode(t, err, kiln.EINVALID)
		_, _, err = e.ListVersions(ctx, kiln.VersionFilter{Status: []kiln.Status{"good"}})
		wantCode(t, err, kiln.EINVALID)
	})
}

func TestLatestVersion(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		seedList(t, e)
		for _, tc := range []struct {
			image string
			min   kiln.Status
			want  string
		}{
			{"appserver", "", "appserver-4"},
			{"appserver", kiln.StatusCandidate, "appserver-4"},
			{"appserver", kiln.StatusTested, "appserver-3"},
			{"appserver", kiln.StatusReady, "appserver-1"},
			{"basic-linux", kiln.StatusTested, "basic-linux-3"},
			{"basic-linux", kiln.StatusReady, "basic-linux-1"},
		} {
			v, err := e.LatestVersion(ctx, tc.image, tc.min)
			if err != nil {
				t.Fatalf("LatestVersion(%s, %q): %v", tc.image, tc.min, err)
			}
			if v.Name != tc.want {
				t.Errorf("LatestVersion(%s, %q) = %s, want %s", tc.image, tc.min, v.Name, tc.want)
			}
		}
		mkImage(t, e.DB, "empty")
		_, err := e.LatestVersion(ctx, "empty", kiln.StatusReady)
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "empty has no version with status ready")
		_, err = e.LatestVersion(ctx, "nginx", "")
		wantCode(t, err, kiln.ENOTFOUND)
		_, err = e.LatestVersion(ctx, "appserver", kiln.StatusRevoked)
		wantCode(t, err, kiln.EINVALID)
	})
}

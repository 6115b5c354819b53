package store

import (
	"context"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// A server made from an imported Packer build checks in by its artifact
// id (or the whole reference) and is recorded as running that version; an
// unknown or ambiguous artifact refuses that check-in alone, and the rest
// of the batch is recorded.
func TestCheckInByArtifact(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "web")
		mkImage(t, e.DB, "vm")
		ami := mkVersion(t, e.DB, packerVersion("web", "packer:amazon-ebs:us-east-1:ami-0abc"))
		mkVersion(t, e.DB, packerVersion("vm", "packer:qemu:VM"))
		mkVersion(t, e.DB, packerVersion("vm", "packer:qemu:VM"))
		plain := mkVersion(t, e.DB, &kiln.NewVersion{Image: "web"})

		byArt := func(id, artifact string) *kiln.Checkin {
			return &kiln.Checkin{InstanceID: id, Hostname: id, Environment: "prod", Artifact: artifact}
		}
		normal := checkin("kiln-1", "kiln-1", "prod", "web", plain.Number)
		rs := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{
			byArt("i-1", "us-east-1:ami-0abc"),
			byArt("i-2", "packer:amazon-ebs:us-east-1:ami-0abc"),
			byArt("i-3", "us-east-1:ami-none"),
			byArt("i-4", "VM"),
			normal,
		}))
		for i, want := range []kiln.VersionRef{ami.Ref(), ami.Ref(), {}, {}, plain.Ref()} {
			r := rs[i]
			if want.IsZero() {
				continue
			}
			if r.Refused != nil || r.Instance == nil || r.Instance.Version != want || r.Unknown || !r.Created {
				t.Errorf("check-in %d: %+v (refused %v); want a new instance running %s", i, r, r.Refused, want)
			}
		}
		wantContains(t, wantCode(t, rs[2].Refused, kiln.ENOTFOUND), "no imported version has artifact us-east-1:ami-none", "kiln version import packer-manifest")
		wantContains(t, wantCode(t, rs[3].Refused, kiln.ECONFLICT), "artifact VM is the artifact of 2 versions (vm-1, vm-2)")
		if rs[2].Instance != nil || rs[3].Instance != nil {
			t.Error("a refused check-in has an instance")
		}
		if _, err := e.FindInstance(ctx, "i-3"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Errorf("refused instance i-3 was recorded: %v", err)
		}
		// Checking in again changes nothing but the time; the release
		// file, when the server has one, wins over the artifact.
		again := byArt("i-1", "us-east-1:ami-0abc")
		r := must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{again}))[0]
		if r.Created || r.Instance.Version != ami.Ref() {
			t.Errorf("second check-in %+v", r)
		}
		both := checkin("i-5", "i-5", "prod", "web", plain.Number)
		both.Artifact = "us-east-1:ami-0abc"
		r = must[[]*kiln.CheckinResult](t)(e.CheckIn(ctx, []*kiln.Checkin{both}))[0]
		if r.Instance.Version != plain.Ref() {
			t.Errorf("release and artifact: recorded %s; want the release's %s", r.Instance.Version, plain.Ref())
		}
		if d := countsDrift(t, e); len(d) > 0 {
			t.Errorf("fleet_counts drifted: %v", d)
		}
		// Only check-ins by artifact may omit the release.
		_, err := e.CheckIn(ctx, []*kiln.Checkin{{InstanceID: "i-6"}})
		if f := kiln.ErrorField(wantErr(t, err)); f != "release.image" {
			t.Errorf("no release, no artifact: field %q", f)
		}
	})
}

// Migration 0030 fills external_artifacts from the provenance of external
// versions recorded before it; the store writes kiln.ExternalNames for
// versions recorded after. This runs the migration's statements into a
// table of their own and compares: the same names on both dialects.
func TestExternalArtifactsBackfill(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		mkImage(t, e.DB, "web")
		for _, a := range []string{"packer:amazon-ebs:us-east-1:ami-0abc", "packer:qemu:VM", "packer:docker:sha256:feed",
			"packer:amazon-ebs:us-east-1:ami-0a,eu-west-1:ami-0b", "vendor-image-7"} {
			mkVersion(t, e.DB, packerVersion("web", a))
		}
		sqlText, err := migrationFiles.ReadFile("migrations/" + e.kind + "/0030_external_artifacts.sql")
		if err != nil {
			t.Fatal(err)
		}
		fill, _, _ := strings.Cut(string(sqlText), "CREATE TRIGGER")
		fill = strings.ReplaceAll(fill, "external_artifacts", "external_artifacts_replay")
		if _, err := e.raw.Exec(fill); err != nil {
			t.Fatalf("replay 0030: %v", err)
		}
		read := func(table string) []string {
			rows, err := e.raw.Query(`SELECT artifact || ' ' || CAST(version_id AS TEXT) FROM ` + table)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var out []string
			for rows.Next() {
				var s string
				if err := rows.Scan(&s); err != nil {
					t.Fatal(err)
				}
				out = append(out, s)
			}
			sort.Strings(out)
			return out
		}
		migrated, stored := read("external_artifacts_replay"), read("external_artifacts")
		if len(stored) != 11 || !slices.Equal(migrated, stored) {
			t.Errorf("the migration's names:\n%q\nthe store's:\n%q", migrated, stored)
		}
		for _, name := range []string{"us-east-1:ami-0a", "eu-west-1:ami-0b", "us-east-1:ami-0a,eu-west-1:ami-0b", "sha256:feed", "vendor-image-7"} {
			if !slices.ContainsFunc(stored, func(s string) bool { return strings.HasPrefix(s, name+" ") }) {
				t.Errorf("no row for %s in %q", name, stored)
			}
		}
	})
}

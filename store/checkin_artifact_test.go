package store

import (
	"context"
	"slices"
	"sort"
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

// Migration 0029 fills external_artifacts from the provenance of external
// versions recorded before it with the SQL below; the store writes the
// same names (kiln.ExternalNames) for versions recorded after. This checks
// the migration's expression against ExternalNames on both dialects.
func TestExternalArtifactsBackfill(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		mkImage(t, e.DB, "web")
		for _, a := range []string{"packer:amazon-ebs:us-east-1:ami-0abc", "packer:qemu:VM", "packer:docker:sha256:feed", "vendor-image-7"} {
			mkVersion(t, e.DB, packerVersion("web", a))
		}
		strpos := "instr"
		if e.kind == "postgres" {
			strpos = "strpos"
		}
		q := `SELECT artifact_ref FROM provenance WHERE method = 'external' AND artifact_ref IS NOT NULL AND artifact_ref <> ''
			UNION SELECT substr(artifact_ref, 8 + ` + strpos + `(substr(artifact_ref, 8), ':')) FROM provenance
			WHERE method = 'external' AND artifact_ref LIKE 'packer:%:_%'`
		read := func(q string) []string {
			rows, err := e.raw.Query(q)
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
		migrated, stored := read(q), read(`SELECT DISTINCT artifact FROM external_artifacts`)
		want := []string{"VM", "packer:amazon-ebs:us-east-1:ami-0abc", "packer:docker:sha256:feed", "packer:qemu:VM", "sha256:feed", "us-east-1:ami-0abc", "vendor-image-7"}
		if !slices.Equal(migrated, want) || !slices.Equal(stored, want) {
			t.Errorf("migration's names %q, stored %q; want %q", migrated, stored, want)
		}
	})
}

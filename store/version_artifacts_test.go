package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

const digestC = "sha256:00000000000000000000000000000000000000000000000000000000000000c3"

// A version's disk images are recorded with it, come back sorted by
// format from every read (find, list), are write-once, and a version
// without any reads back without any.
func TestVersionArtifacts(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "basic-linux")
		plain := mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux",
			Provenance: kiln.Provenance{Artifact: &kiln.Artifact{Ref: "local:" + digestA, Digest: digestA, Size: 10}}})
		if len(plain.Provenance.Artifacts) != 0 {
			t.Fatalf("version without disks has %v", plain.Provenance.Artifacts)
		}
		qcow := kiln.Artifact{Ref: "local:" + digestB, Digest: digestB, Size: 20, Format: kiln.FormatQCOW2}
		raw := kiln.Artifact{Ref: "local:" + digestC, Digest: digestC, Size: 30, Format: kiln.FormatRaw}
		var sealed []kiln.Artifact
		v, err := e.CreateVersion(ctx, &kiln.NewVersion{Image: "basic-linux",
			Provenance: kiln.Provenance{Artifact: &kiln.Artifact{Ref: "local:" + digestA, Digest: digestA, Size: 10},
				Artifacts: []kiln.Artifact{raw, qcow}},
			Seal: func(v *kiln.Version) (*kiln.Attachment, error) { sealed = v.Provenance.Artifacts; return nil, nil }})
		if err != nil {
			t.Fatal(err)
		}
		want := []kiln.Artifact{qcow, raw}
		if diff := cmp.Diff(want, sealed); diff != "" {
			t.Errorf("artifacts the seal saw (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, v.Provenance.Artifacts); diff != "" {
			t.Errorf("created artifacts (-want +got):\n%s", diff)
		}
		got := must[*kiln.Version](t)(e.FindVersion(ctx, v.Ref()))
		if diff := cmp.Diff(want, got.Provenance.Artifacts); diff != "" {
			t.Errorf("found artifacts (-want +got):\n%s", diff)
		}
		if a, err := got.Artifact(kiln.FormatQCOW2); err != nil || a.Digest != digestB {
			t.Errorf("Artifact(qcow2) = %v, %v", a, err)
		}
		vs, _, err := e.ListVersions(ctx, kiln.VersionFilter{Image: "basic-linux"})
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 || len(vs[0].Provenance.Artifacts) != 2 || len(vs[1].Provenance.Artifacts) != 0 {
			t.Errorf("listed versions' artifacts: %+v", vs)
		}
		found := must[*kiln.Version](t)(e.FindVersion(ctx, plain.Ref()))
		_, err = found.Artifact(kiln.FormatQCOW2)
		wantContains(t, wantCode(t, err, kiln.ENOTFOUND), "basic-linux-1 has no qcow2 disk image", `formats = ["rootfs", "qcow2"]`)

		_, err = e.raw.Exec(`UPDATE version_artifacts SET digest = 'x'`)
		if err == nil || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("UPDATE version_artifacts: %v, want refused", err)
		}
		_, err = e.raw.Exec(`DELETE FROM version_artifacts`)
		if err == nil || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("DELETE FROM version_artifacts: %v, want refused", err)
		}

		before := e.counts(t)
		for _, tc := range []struct {
			p    kiln.Provenance
			want string
		}{
			{kiln.Provenance{Artifacts: []kiln.Artifact{qcow}}, "built from the version's root filesystem artifact"},
			{kiln.Provenance{Artifact: &kiln.Artifact{Ref: "r", Digest: digestA}, Artifacts: []kiln.Artifact{qcow, qcow}}, "listed twice"},
			{kiln.Provenance{Artifact: &kiln.Artifact{Ref: "r", Digest: digestA}, Artifacts: []kiln.Artifact{{Ref: "r", Digest: digestB, Format: "rootfs"}}}, "not a disk format"},
			{kiln.Provenance{Artifact: &kiln.Artifact{Ref: "r", Digest: digestA}, Artifacts: []kiln.Artifact{{Ref: "r", Digest: "sha256:x", Format: "raw"}}}, "digest"},
		} {
			_, err := e.CreateVersion(ctx, &kiln.NewVersion{Image: "basic-linux", Provenance: tc.p})
			wantContains(t, wantCode(t, err, kiln.EINVALID), tc.want)
		}
		e.unchanged(t, before)
	})
}

package store

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/kiln-project/kiln"
)

// TestArtifactLayersRoundTrip: a layered artifact's layers come back in
// order from every way of reading a version, a single-tar artifact comes
// back without layers, and the rows cannot be changed afterwards.
func TestArtifactLayersRoundTrip(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		mkImage(t, e.DB, "basic-linux")
		single := mkVersion(t, e.DB, &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{
			Method: kiln.MethodFresh, Artifact: &kiln.Artifact{Ref: "local:" + digestA, Digest: digestA, Size: 10},
		}})
		layers := []kiln.Layer{
			{Digest: digestA, DiffID: digestA, Size: 10, MediaType: kiln.LayerMediaTypeTar},
			{Digest: "sha256:" + strings.Repeat("c", 64), DiffID: "sha256:" + strings.Repeat("d", 64), Size: 7, MediaType: kiln.LayerMediaTypeGzip},
			{Digest: "sha256:" + strings.Repeat("e", 64), DiffID: "sha256:" + strings.Repeat("f", 64), Size: 3, MediaType: kiln.LayerMediaTypeZstd},
		}
		nv := &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{
			Method: kiln.MethodReheat, Parent: ptrRef(single.Ref()),
			Artifact: &kiln.Artifact{Ref: "local:" + digestB, Digest: digestB, Size: 20, Layers: layers},
		}}
		created, err := e.CreateVersion(ctx, nv)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(layers, created.Provenance.Artifact.Layers); diff != "" {
			t.Errorf("CreateVersion's layers (-want +got):\n%s", diff)
		}
		nv.Provenance.Artifact.Layers[0].Size = 99 // the caller's slice is not the stored one
		layers[0].Size = 10

		found, err := e.FindVersion(ctx, created.Ref())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(layers, found.Provenance.Artifact.Layers); diff != "" {
			t.Errorf("FindVersion's layers (-want +got):\n%s", diff)
		}
		latest, err := e.LatestVersion(ctx, "basic-linux", "")
		if err != nil || latest.Number != created.Number || len(latest.Provenance.Artifact.Layers) != 3 {
			t.Errorf("LatestVersion = %+v, %v; want %s with 3 layers", latest, err, created.Name)
		}
		list, _, err := e.ListVersions(ctx, kiln.VersionFilter{Image: "basic-linux"})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range list {
			want := 0
			if v.Number == created.Number {
				want = 3
			}
			if got := len(v.Provenance.Artifact.Layers); got != want {
				t.Errorf("ListVersions: %s has %d layers, want %d", v.Name, got, want)
			}
		}
		if s, err := e.FindVersion(ctx, single.Ref()); err != nil || s.Provenance.Artifact.Layered() {
			t.Errorf("single-tar version: %+v, %v", s.Provenance.Artifact, err)
		}

		for _, q := range []string{`UPDATE artifact_layers SET size = 1`, `DELETE FROM artifact_layers`} {
			if _, err := e.raw.Exec(q); err == nil || !strings.Contains(err.Error(), "kiln immutable") {
				t.Errorf("%s: %v, want a refusal", q, err)
			}
		}

		// A bad layer fails the whole registration.
		before := e.counts(t)
		bad := &kiln.NewVersion{Image: "basic-linux", Provenance: kiln.Provenance{
			Method:   kiln.MethodFresh,
			Artifact: &kiln.Artifact{Ref: "local:" + digestB, Digest: digestB, Layers: []kiln.Layer{{Digest: digestA, DiffID: digestA, MediaType: "application/x-tar"}}},
		}}
		if _, err := e.CreateVersion(ctx, bad); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "layers[0].media_type") {
			t.Errorf("bad media type: %v, want invalid naming artifact.layers[0].media_type", err)
		}
		e.unchanged(t, before)
	})
}

func ptrRef(r kiln.VersionRef) *kiln.VersionRef { return &r }

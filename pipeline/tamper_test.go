package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/store"
)

// refusingPlatform fails the test when anything is launched on it.
type refusingPlatform struct {
	kiln.Platform
	t *testing.T
}

func (p refusingPlatform) Name() string { return "refusing" }
func (p refusingPlatform) Launch(_ context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	p.t.Errorf("the test stage launched %s", spec.ID)
	return nil, kiln.Errorf(kiln.EINTERNAL, "not here")
}
func (p refusingPlatform) Destroy(context.Context, string) error { return nil }

// The test stage refuses, before anything boots and without moving the
// version's status, a candidate whose recorded artifact is not the one its
// signed provenance names (someone with write access to the database
// pointed it at another artifact).
func TestStageRefusesTamperedArtifact(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:test")
	dir := t.TempDir()
	reg, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	key := testenv.Sign(t, reg)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	good, err := arts.Put(ctx, strings.NewReader("the image that was built and signed"))
	if err != nil {
		t.Fatal(err)
	}
	evil, err := arts.Put(ctx, strings.NewReader("another image"))
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := reg.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Method: kiln.MethodFresh, Artifact: good, BuiltBy: "test"}})
	if err != nil {
		t.Fatal(err)
	}
	testenv.SwapArtifact(t, dir, good.Digest, evil.Digest)

	tester := &pipeline.Tester{Registry: reg, Artifacts: arts,
		Launcher: &launch.Launcher{Registry: reg, Platform: refusingPlatform{t: t}, Inventory: reg, Key: key}}
	_, err = tester.Test(ctx, v.Ref(), pipeline.TestOptions{Suite: suite(t, passing)})
	if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "refusing to launch") {
		t.Fatalf("test stage of a swapped artifact: %v; want a refusal (conflict)", err)
	}
	if got, _ := reg.FindVersion(ctx, v.Ref()); got.Status != kiln.StatusCandidate {
		t.Errorf("status after the refusal: %s", got.Status)
	}
}

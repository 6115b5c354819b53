package memory_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/platform/memory"
	"github.com/kiln-project/kiln/platform/platformtest"
)

// The in-memory platform keeps the contract every driver keeps; it boots
// nothing, so the boot part of the suite is not for it.
func TestPlatformContract(t *testing.T) {
	arts, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	art, err := arts.Put(context.Background(), strings.NewReader("not a root filesystem: nothing boots it"))
	if err != nil {
		t.Fatal(err)
	}
	p := memory.New()
	p.Artifacts = arts
	// Launches take a while, so that the suite's cancelled launches are cut
	// short part way, not refused before they begin.
	p.Launching = func(ctx context.Context, _ string) error {
		select {
		case <-time.After(100 * time.Millisecond):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	platformtest.RunContract(t, &platformtest.Harness{
		Platform:  p,
		Artifacts: arts,
		Image:     *art,
		Crash: func(t testing.TB, id string) {
			if err := p.Crash(id); err != nil {
				t.Fatal(err)
			}
		},
	})
}

// A launch the platform destroys part way fails; the instance stays gone.
func TestDestroyWhileLaunching(t *testing.T) {
	ctx := context.Background()
	p := memory.New()
	release := make(chan struct{})
	p.Launching = func(context.Context, string) error { <-release; return nil }
	done := make(chan error, 1)
	go func() {
		_, err := p.Launch(ctx, kiln.LaunchSpec{ID: "m-1", Artifact: kiln.Artifact{Digest: "sha256:" + strings.Repeat("a", 64)}})
		done <- err
	}()
	for {
		if st, err := p.State(ctx, "m-1"); err == nil && st == kiln.InstanceStarting {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Destroy(ctx, "m-1"); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-done; kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Fatalf("launch destroyed part way: %v; want %s", err, kiln.ECONFLICT)
	}
	if _, err := p.State(ctx, "m-1"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("State after: %v; want %s", err, kiln.ENOTFOUND)
	}
	if d := p.Destroyed(); len(d) != 1 || d[0] != "m-1" {
		t.Fatalf("Destroyed() = %v", d)
	}
}

package rollout

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
)

// countingPlatform is the listening in-memory platform that keeps the
// largest number of instances that lived at once.
type countingPlatform struct {
	*listenPlatform
	mu         sync.Mutex
	live, most int
}

func (p *countingPlatform) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	p.mu.Lock()
	p.live++
	p.most = max(p.most, p.live)
	p.mu.Unlock()
	return p.listenPlatform.Launch(ctx, spec)
}

func (p *countingPlatform) Destroy(ctx context.Context, id string) error {
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	return p.listenPlatform.Destroy(ctx, id)
}

// A batch size above the max surge removes old instances first: 4
// replicas in batches of 2 with a surge of 1 and 50% min healthy never run
// more than 5 instances, and take 2 batches.
func TestBatchSizeAboveSurge(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	v2 := env.addVersion(t)
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "wide", Image: "appserver", Environment: "prod", Replicas: 4, MaxSurge: 1, BatchSize: 2,
		MinHealthyPercent: 50, Listen: "127.0.0.1:6"}); err != nil {
		t.Fatal(err)
	}
	frontEndStandIn(t, env, "wide")
	lp := &listenPlatform{Platform: memory.New()}
	t.Cleanup(lp.close)
	plat := &countingPlatform{listenPlatform: lp}
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Progress: testWriter{t},
		Launcher:      &launch.Launcher{Registry: env.db, Platform: plat, Inventory: env.db, Key: env.key},
		HealthTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second}
	if r, err := e.Start(ctx, "wide", kiln.VersionRef{Image: "appserver", Number: 1}, Options{}); err != nil || r.State != kiln.RolloutSucceeded || r.Batch != 2 {
		t.Fatalf("first rollout: %+v %v; want success in 2 batches", r, err)
	}
	plat.mu.Lock()
	plat.most = plat.live
	plat.mu.Unlock()
	r, err := e.Start(ctx, "wide", v2, Options{})
	if err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("rollout to %s: %+v %v", v2, r, err)
	}
	if r.Batch != 2 {
		t.Errorf("%d batches, want 2 (4 replicas in batches of 2)", r.Batch)
	}
	plat.mu.Lock()
	defer plat.mu.Unlock()
	if plat.most > 5 || plat.live != 4 {
		t.Errorf("at most %d instances lived at once (now %d); want at most 5 (4 replicas + surge 1), 4 at the end", plat.most, plat.live)
	}
	ms, err := env.db.ListMembers(ctx, "wide")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Version != v2 {
			t.Errorf("member %s runs %s", m.InstanceID, m.Version)
		}
	}
}

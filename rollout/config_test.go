package rollout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
)

// listenPlatform is the in-memory platform whose instances each get a
// loopback listener as their forwarded port, so TCP health checks pass.
type listenPlatform struct {
	*memory.Platform
	mu        sync.Mutex
	listeners []net.Listener
	// settings are the kiln-settings credential each instance was given.
	settings map[string]string
}

func (p *listenPlatform) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	res, err := p.Platform.Launch(ctx, spec)
	if err != nil {
		return nil, err
	}
	if spec.Config != nil {
		for _, c := range spec.Config.Credentials {
			if c.Name == "kiln-settings" {
				p.mu.Lock()
				if p.settings == nil {
					p.settings = map[string]string{}
				}
				p.settings[spec.ID] = string(c.Data)
				p.mu.Unlock()
			}
		}
	}
	for i := range res.Ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.listeners = append(p.listeners, l)
		p.mu.Unlock()
		res.Ports[i].Host = l.Addr().String() // connections wait in the backlog, open
	}
	return res, nil
}

func (p *listenPlatform) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.listeners {
		l.Close()
	}
}

// frontEndStandIn reports the service's current generation as a front end
// that took every change would, until the test ends.
func frontEndStandIn(t *testing.T, env *hostEnv, service string) {
	t.Helper()
	ctx, cancel := context.WithCancel(opCtx())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if svc, err := env.db.FindService(ctx, service); err == nil {
				_ = env.db.ReportProxy(ctx, &kiln.ProxyStatus{Service: service, Generation: svc.Generation})
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// A rollout that changes only the configuration (same version, new config
// digest) replaces every instance in batches; a rollout with the digest the
// instances run leaves them alone; and a resumed configuration rollout
// leaves the instances already given the new configuration alone.
func TestConfigOnlyRollout(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "cfg", Image: "appserver", Environment: "prod", Replicas: 3, MaxSurge: 1,
		Listen: "127.0.0.1:3", Health: kiln.HealthCheck{Kind: kiln.HealthTCP}}); err != nil {
		t.Fatal(err)
	}
	frontEndStandIn(t, env, "cfg")
	plat := &listenPlatform{Platform: memory.New()}
	t.Cleanup(plat.close)
	var mu sync.Mutex
	banner := "dev banner"
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db,
		Launcher:      &launch.Launcher{Registry: env.db, Platform: plat, Inventory: env.db, Key: env.key},
		HealthTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second,
		Config: func(context.Context, *kiln.Service) (*launch.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			return &launch.Config{Source: "test", Settings: map[string]string{"BANNER": banner}}, nil
		}}
	setBanner := func(b string) {
		mu.Lock()
		banner = b
		mu.Unlock()
	}
	v1 := kiln.VersionRef{Image: "appserver", Number: 1}
	// members returns the active members' instance ids and the config
	// digests their instances were given.
	members := func() (ids []string, digests map[string]string) {
		t.Helper()
		ms, err := env.db.ListMembers(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		digests = map[string]string{}
		for _, m := range ms {
			if m.State != kiln.MemberActive {
				continue
			}
			inst, err := env.db.FindInstance(ctx, m.InstanceID)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.InstanceID)
			digests[m.InstanceID] = inst.ConfigDigest
		}
		slices.Sort(ids)
		return ids, digests
	}
	oneDigest := func(digests map[string]string) string {
		t.Helper()
		var d string
		for id, dd := range digests {
			if dd == "" || (d != "" && dd != d) {
				t.Fatalf("config digests %v: %s differs", digests, id)
			}
			d = dd
		}
		return d
	}

	r, err := e.Start(ctx, "cfg", v1, Options{})
	if err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("first rollout: %+v %v", r, err)
	}
	first, digests := members()
	if len(first) != 3 {
		t.Fatalf("members after the first rollout: %v", first)
	}
	dev := oneDigest(digests)

	// Same version, same configuration: nothing to do.
	r, err = e.Start(ctx, "cfg", v1, Options{})
	if err != nil || r.State != kiln.RolloutSucceeded || r.Batch != 0 {
		t.Fatalf("rollout with the same configuration: %+v %v; want success without batches", r, err)
	}
	if again, _ := members(); !slices.Equal(again, first) || len(plat.Destroyed()) != 0 {
		t.Fatalf("the same configuration replaced instances: %v → %v, destroyed %v", first, again, plat.Destroyed())
	}

	// Same version, new configuration: every instance replaced, one batch
	// of MaxSurge at a time.
	setBanner("prod banner")
	r, err = e.Start(ctx, "cfg", v1, Options{})
	if err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("configuration rollout: %+v %v", r, err)
	}
	if r.Batch != 3 || len(r.BatchTimes) != 3 {
		t.Errorf("configuration rollout took %d batches; want 3 (3 replicas, surge 1)", r.Batch)
	}
	second, digests := members()
	prod := oneDigest(digests)
	if len(second) != 3 || prod == dev {
		t.Fatalf("after the configuration rollout: %v with digest %s (was %s)", second, prod, dev)
	}
	for _, id := range first {
		if slices.Contains(second, id) || !slices.Contains(plat.Destroyed(), id) {
			t.Errorf("instance %s with the old configuration was not replaced", id)
		}
	}

	// Interrupted after its first batch, a configuration rollout resumes
	// without replacing the instance that already has the new one.
	setBanner("prod banner 2")
	launches := 0
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var kept string
	plat.Launching = func(_ context.Context, id string) error {
		mu.Lock()
		defer mu.Unlock()
		launches++
		if launches == 1 {
			kept = id
			return nil
		}
		cancel()
		return errors.New("interrupted")
	}
	if r, err = e.Start(runCtx, "cfg", v1, Options{}); err == nil || r.State != kiln.RolloutRunning {
		t.Fatalf("interrupted rollout: %+v %v; want it running, interrupted", r, err)
	}
	mu.Lock()
	plat.Launching = func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		launches++
		return nil
	}
	mu.Unlock()
	if r, err = e.Resume(ctx, "cfg"); err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("resumed rollout: %+v %v", r, err)
	}
	third, digests := members()
	if latest := oneDigest(digests); latest == prod || len(third) != 3 || !slices.Contains(third, kept) {
		t.Fatalf("after the resumed rollout: %v with digest %s; want 3 with a new digest, %s kept", third, latest, kept)
	}
	mu.Lock()
	defer mu.Unlock()
	if launches != 4 { // 1 kept + 1 cut short + 2 on resume
		t.Errorf("%d launches; want 4: the instance with the current configuration is not launched again", launches)
	}
}

// A configuration-only rollout that fails is rolled back to the
// configuration the replaced instances were given, kept with the rollout
// that launched them: the instances launched by the rollback get the old
// settings (not the new ones the estate declares now) and the old digest,
// and the rollout records both digests.
func TestConfigRollbackRestoresPrevious(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "cfg", Image: "appserver", Environment: "prod", Replicas: 2, MaxSurge: 1,
		Listen: "127.0.0.1:3", Health: kiln.HealthCheck{Kind: kiln.HealthTCP}}); err != nil {
		t.Fatal(err)
	}
	frontEndStandIn(t, env, "cfg")
	plat := &listenPlatform{Platform: memory.New()}
	t.Cleanup(plat.close)
	var mu sync.Mutex
	banner := "old banner"
	secret := filepath.Join(t.TempDir(), "db-password")
	if err := os.WriteFile(secret, []byte("s3cret-value"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &Engine{Services: env.db, Rollouts: env.db, Registry: env.db,
		Launcher:      &launch.Launcher{Registry: env.db, Platform: plat, Inventory: env.db, Key: env.key},
		HealthTimeout: 5 * time.Second, DrainTimeout: 5 * time.Second,
		Config: func(context.Context, *kiln.Service) (*launch.Config, error) {
			mu.Lock()
			defer mu.Unlock()
			return &launch.Config{Source: "estate:test env prod", Settings: map[string]string{"BANNER": banner},
				Secrets: []launch.Secret{{Name: "db-password", File: secret}}}, nil
		}}
	v1 := kiln.VersionRef{Image: "appserver", Number: 1}
	active := func() map[string]string { // instance → config digest
		t.Helper()
		ms, err := env.db.ListMembers(ctx, "cfg")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, m := range ms {
			if m.State == kiln.MemberActive {
				inst, err := env.db.FindInstance(ctx, m.InstanceID)
				if err != nil {
					t.Fatal(err)
				}
				out[m.InstanceID] = inst.ConfigDigest
			}
		}
		return out
	}
	r, err := e.Start(ctx, "cfg", v1, Options{})
	if err != nil || r.State != kiln.RolloutSucceeded {
		t.Fatalf("first rollout: %+v %v", r, err)
	}
	old := r.ToConfig
	if old == "" || r.FromConfig != "" {
		t.Fatalf("first rollout records configurations %q → %q; want none → a digest", r.FromConfig, r.ToConfig)
	}
	first := active()
	for id, d := range first {
		if d != old {
			t.Fatalf("%s runs configuration %s, want %s", id, d, old)
		}
	}
	// The kept configuration holds the settings and the secret's
	// reference, never its value.
	rec, err := env.db.FindLaunchConfig(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Settings["BANNER"] != "old banner" || len(rec.Secrets) != 1 || rec.Secrets[0].File != secret {
		t.Fatalf("kept configuration %+v", rec)
	}
	if strings.Contains(fmt.Sprintf("%+v", rec), "s3cret-value") {
		t.Fatalf("kept configuration holds the secret's value: %+v", rec)
	}

	// New banner; the rollout's second launch fails, so it rolls back.
	mu.Lock()
	banner = "new banner"
	mu.Unlock()
	launches := 0
	plat.Launching = func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		launches++
		if launches == 2 {
			return errors.New("boom")
		}
		return nil
	}
	r, err = e.Start(ctx, "cfg", v1, Options{})
	if err != nil || r.State != kiln.RolloutRolledBack {
		t.Fatalf("failing configuration rollout: %+v %v; want rolled back", r, err)
	}
	if r.FromConfig != old || r.ToConfig == "" || r.ToConfig == old {
		t.Fatalf("rollout records configurations %q → %q; want %q → a new digest", r.FromConfig, r.ToConfig, old)
	}
	got, err := env.db.FindRollout(ctx, r.ID)
	if err != nil || got.FromConfig != old || got.ToConfig != r.ToConfig {
		t.Fatalf("stored rollout %+v %v", got, err)
	}
	after := active()
	if len(after) != 2 {
		t.Fatalf("after the rollback: %v; want 2 instances", after)
	}
	plat.mu.Lock()
	defer plat.mu.Unlock()
	relaunched := 0
	for id, d := range after {
		if d != old {
			t.Errorf("after the rollback %s runs configuration %s; want the old %s", id, d, old)
		}
		if !strings.Contains(plat.settings[id], `BANNER="old banner"`) {
			t.Errorf("%s was given %q; want the old banner", id, plat.settings[id])
		}
		if _, ok := first[id]; !ok {
			relaunched++
		}
	}
	// The new configuration's first instance was taken out and replaced
	// by one launched with the old configuration.
	if relaunched != 1 || launches != 3 {
		t.Errorf("%d instances launched by the rollback (%d launches); want 1 (3)", relaunched, launches)
	}
}

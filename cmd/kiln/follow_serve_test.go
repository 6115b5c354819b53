package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/rollout"
)

// TestServeFollowsPromote: kiln serve (the real serve loop, with its
// follower) rolls a service that follows its environment's channel out
// when a person moves the channel with `kiln promote`, with no `kiln
// rollout` typed; the rollout is kiln serve's follower's, and the service's
// one instance runs the promoted version after it.
func TestServeFollowsPromote(t *testing.T) {
	base := testenv.Image(t, "the follow test") // needs root and systemd-nspawn
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("KILN_ESTATE", "")
	db, _ := seedRollout(t, dir, []string{base, base})
	t.Cleanup(func() { db.Close() })
	if _, err := db.SetStatus(ctx, kiln.VersionRef{Image: "appserver", Number: 2}, kiln.StatusReady, "test"); err != nil {
		t.Fatal(err)
	}
	plat := webPlatform(t, dir)
	mustRun(t, dir, "promote", "appserver-1", "--to", "dev")
	mustRun(t, dir, "service", "create", "web", "--image", "appserver", "--env", "dev", "--replicas", "1",
		"--port", freeLoopbackPort(t), "--health", "http:/", "--bake-time", "1s")
	mustRun(t, dir, "rollout", "web")

	startServe(t, dir, cli.ServeOptions{FollowEvery: time.Second})
	mustRun(t, dir, "promote", "appserver-2", "--to", "dev")
	promoted := time.Now()
	var ro *kiln.Rollout
	for deadline := time.Now().Add(5 * time.Minute); ro == nil; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("kiln serve started no rollout of web to appserver-2 within 5 minutes of the promotion")
		}
		ros, err := db.ListRollouts(ctx, "web", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range ros {
			if r.To.Number != 2 {
				continue
			}
			switch r.State {
			case kiln.RolloutSucceeded:
				ro = r
			case kiln.RolloutFailed, kiln.RolloutRolledBack:
				t.Fatalf("rollout %d to appserver-2: %s (%s)", r.ID, r.State, r.Reason)
			}
		}
	}
	if ro.StartedBy != rollout.FollowActor || ro.StartedAt.Before(promoted.Add(-time.Second)) {
		t.Errorf("rollout %d was started by %q at %s (promoted at %s); want kiln serve's follower after the promotion", ro.ID, ro.StartedBy, ro.StartedAt, promoted)
	}
	ms, err := db.ListMembers(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms {
		got = append(got, fmt.Sprintf("%s %s", m.Version, m.State))
	}
	if len(ms) != 1 || ms[0].Version.Number != 2 {
		t.Errorf("web's members after the rollout: %v; want one on appserver-2", got)
	}
	if ids := leftovers(t, plat); len(ids) != 1 {
		t.Errorf("%d instances run, want web's 1: %v", len(ids), ids)
	}
}

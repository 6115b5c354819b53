package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/autopilot"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/aptrepotest"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/store"
)

// TestAutopilotNeedsRefreshBlock: kiln serve's autopilot acts only on the
// environments whose block says refresh { auto = true }. An advisory
// exposes appserver-1's instances in staging (refresh { auto = true }) and
// in prod (an environment block without refresh, like one without a
// block at all): once the feed's sync has kicked the autopilot and its
// pass has refreshed staging, prod has no autopilot audit entry, and
// nothing was queued or rolled out. No image is built or booted.
func TestAutopilotNeedsRefreshBlock(t *testing.T) {
	if os.Geteuid() != 0 {
		// kiln serve runs its autopilot beside the rollout host, which
		// needs this machine's platform.
		ci.SkipOrFail(t, "kiln serve's rollout host needs root")
	}
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("KILN_ESTATE", "")
	pk := filepath.Join(t.TempDir(), "packages.txt")
	if err := os.WriteFile(pk, []byte("base-files 12.4+deb12u5 amd64\nkiln-demo 1.0-1 all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, "image", "create", "appserver")
	mustRun(t, dir, "version", "create", "appserver", "--packages", pk)
	mustRun(t, dir, "version", "status", "appserver-1", "tested", "--reason", "passed")
	mustRun(t, dir, "version", "status", "appserver-1", "ready")
	for _, env := range []string{"prod", "prod", "staging"} {
		mustRun(t, dir, "instance", "register", "--image", "appserver", "--version", "1", "--env", env)
	}
	est := t.TempDir()
	def := `image "appserver" {
  debian { suite = "bookworm" }
}

environment "staging" {
  refresh {
    auto         = true
    min_severity = "high"
  }
}

environment "prod" {}
`
	if err := os.WriteFile(filepath.Join(est, "estate.kiln.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, dir, "estate", "add", "demo", est)
	feed := aptrepotest.NewFeed(t, aptrepotest.FixedRecord(patchAdvisory, "kiln-demo", "1.0-2", "high"))
	mustRun(t, dir, "advisory", "source", "add", "demo-osv", "--kind", "osv", "--url", feed.URL)

	startServe(t, dir, cli.ServeOptions{SourcesEvery: time.Second, AutopilotEvery: time.Hour, FollowEvery: time.Hour, TriggerEvery: time.Hour})
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	autopilotOn := func(env string) []*kiln.AuditEntry {
		es, err := db.ListAudit(ctx, kiln.AuditFilter{Target: "environment " + env})
		if err != nil {
			t.Fatal(err)
		}
		var out []*kiln.AuditEntry
		for _, e := range es {
			if e.Actor == autopilot.Actor {
				out = append(out, e)
			}
		}
		return out
	}
	// The pass the sync kicked: staging refreshed (its instances belong to
	// no service: listed with the command that would replace them).
	var staging []*kiln.AuditEntry
	for deadline := time.Now().Add(2 * time.Minute); len(staging) < 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the autopilot did not refresh staging within 2 minutes after the feed (%d feed requests); audit: %+v", feed.Gets(), staging)
		}
		staging = autopilotOn("staging")
	}
	if !strings.Contains(staging[0].Detail, patchAdvisory+" (high, at or above high) exposes 1 instance(s) on appserver-1") ||
		!strings.Contains(staging[1].Detail, "outside services") {
		t.Errorf("staging's refresh: %q / %q", staging[0].Detail, staging[1].Detail)
	}

	// prod is exposed as much, and the autopilot left it alone.
	var e kiln.Exposure
	if err := json.Unmarshal([]byte(mustRun(t, dir, "-o", "json", "fleet", "exposed", "--advisory", patchAdvisory, "--env", "prod")), &e); err != nil {
		t.Fatal(err)
	}
	if e.Instances != 2 {
		t.Fatalf("prod: %d instances exposed, want 2", e.Instances)
	}
	if es := autopilotOn("prod"); len(es) != 0 {
		t.Errorf("the autopilot acted on prod, which has no refresh block: %+v", es[0])
	}
	if runs, _, err := db.ListRuns(ctx, kiln.RunFilter{Limit: 10}); err != nil || len(runs) != 0 {
		t.Errorf("runs queued: %+v (%v)", runs, err)
	}
	if es, err := db.ListAudit(ctx, kiln.AuditFilter{Actor: autopilot.Actor}); err != nil || len(es) != 2 {
		t.Errorf("the autopilot's audit entries: %d (%v), want staging's 2", len(es), err)
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/aptrepotest"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/store"
)

// TestFleetRefreshMakesTheFix drives `kiln fleet refresh --apply` through
// the CLI's real wiring (cli/rollout.go fixRuns) with real pipeline runs:
// appserver installs kiln-demo from a local Debian repository and runs as
// a 1-instance service; an advisory says kiln-demo is fixed in 1.0-2.
//
//   - --no-run leaves the service blocked and queues no run;
//   - an --estate that does not exist fails before queueing anything;
//   - once the repository publishes 1.0-2, --apply (no --estate: the
//     estate of appserver's last run) queues the run, carries it out in
//     this process (pipeline.Runner.Wait), then rolls the service out to
//     the version it made, and the advisory exposes nothing;
//   - through --server on kiln serve: without --estate it refuses and
//     says to name a registered estate; with --estate NAME the server
//     runs the pipeline (followed by PollRuns) and the rollout, for a
//     second advisory fixed in 1.0-3.
func TestFleetRefreshMakesTheFix(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "building and booting images needs root")
	}
	repo := aptrepotest.New(t) // needs dpkg-deb and apt-ftparchive
	origin := testenv.Image(t, "the fleet refresh test")
	ctx := context.Background()
	repo.Publish(t, "kiln-demo", "1.0-1")
	est := patchEstate(t, origin, repo.URL, patchByHand)
	dir := t.TempDir()
	t.Setenv("KILN_NO_AGENT", "1") // the test binary is no agent to bake into images
	t.Setenv("KILN_ESTATE", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KILN_SERVER", "")
	t.Setenv("KILN_TOKEN", "")
	plat := webPlatform(t, dir)

	mustRun(t, dir, "run", est, "basic-linux", "appserver")
	mustRun(t, dir, "service", "create", "web", "--image", "appserver", "--env", "prod", "--replicas", "1",
		"--port", freeLoopbackPort(t), "--health", "http:/", "--bake-time", "0s", "--follow", "none")
	mustRun(t, dir, "rollout", "web")
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })

	advisories := t.TempDir()
	importAdvisory := func(id, fixed string) {
		t.Helper()
		f := filepath.Join(advisories, id+".json")
		if err := os.WriteFile(f, aptrepotest.FixedRecord(id, "kiln-demo", fixed, "high"), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, dir, "advisory", "import", "osv", f)
	}
	exposed := func(id string) int {
		t.Helper()
		var e kiln.Exposure
		if err := json.Unmarshal([]byte(mustRun(t, dir, "-o", "json", "fleet", "exposed", "--advisory", id)), &e); err != nil {
			t.Fatal(err)
		}
		return e.Instances
	}
	runs := func() []*kiln.Run {
		t.Helper()
		rs, _, err := db.ListRuns(ctx, kiln.RunFilter{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	member := func() kiln.VersionRef {
		t.Helper()
		ms, err := db.ListMembers(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 {
			t.Fatalf("web has %d members, want 1: %+v", len(ms), ms)
		}
		return ms[0].Version
	}
	// newRun is the run of appserver queued after the first n runs.
	newRun := func(n int) *kiln.Run {
		t.Helper()
		rs := runs()
		for _, r := range rs {
			if r.Image == "appserver" && r.ID > int64(n) {
				return r
			}
		}
		t.Fatalf("no run of appserver after the first %d: %d runs", n, len(rs))
		return nil
	}

	const fixedIn2, fixedIn3 = "KILN-DEMO-2026-2", "KILN-DEMO-2026-3"
	importAdvisory(fixedIn2, "1.0-2")
	if n := exposed(fixedIn2); n != 1 {
		t.Fatalf("%d instances exposed to %s, want web's 1", n, fixedIn2)
	}
	first := member()
	before := len(runs())

	// --no-run: the fix is planned, blocked, and nothing is built.
	out, errs, code := run(t, dir, "fleet", "refresh", "--apply", "--no-run", "--advisory", fixedIn2)
	t.Logf("refresh --apply --no-run: exit %d\n%s%s", code, out, errs)
	if code != 0 || !strings.Contains(out, "blocked: ") || strings.Contains(out, "queued") || strings.Contains(errs, "queued") {
		t.Errorf("refresh --apply --no-run: exit %d; want 0 with web blocked and no run queued\n%s%s", code, out, errs)
	}
	if n := len(runs()); n != before {
		t.Errorf("refresh --apply --no-run queued %d runs", n-before)
	}

	// An estate directory that does not exist: refused before a run.
	missing := filepath.Join(t.TempDir(), "no-estate")
	out, errs, code = run(t, dir, "fleet", "refresh", "--apply", "--estate", missing, "--advisory", fixedIn2)
	if code == 0 || !strings.Contains(errs, missing) {
		t.Errorf("refresh --apply --estate %s: exit %d; want a failure naming the directory\n%s%s", missing, code, out, errs)
	}
	if n := len(runs()); n != before {
		t.Errorf("refresh with a missing estate queued %d runs", n-before)
	}
	if m := member(); m != first {
		t.Errorf("web runs %s after the refused refreshes, want %s", m, first)
	}

	// The fix is published: refresh builds it here, then rolls web out.
	repo.Publish(t, "kiln-demo", "1.0-2")
	out, errs, code = run(t, dir, "fleet", "refresh", "--apply", "--advisory", fixedIn2)
	t.Logf("refresh --apply: exit %d\n%s%s", code, out, errs)
	if code != 0 {
		t.Fatalf("refresh --apply: exit %d\n%s%s", code, out, errs)
	}
	fix := newRun(before)
	if fix.Status != kiln.RunSucceeded || fix.Version == nil || !strings.HasPrefix(fix.Trigger, "refresh: "+fixedIn2) || fix.Estate != est {
		t.Fatalf("run %d: %s, made %v, trigger %q, estate %q; want succeeded, a new version, triggered by the refresh for %s from %s",
			fix.ID, fix.Status, fix.Version, fix.Trigger, fix.Estate, fixedIn2, est)
	}
	for _, want := range []string{fmt.Sprintf("run %d: appserver succeeded, %s", fix.ID, fix.Version), "succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("refresh --apply output lacks %q:\n%s", want, out)
		}
	}
	if want := fmt.Sprintf("==> run %d: appserver queued (refresh: %s", fix.ID, fixedIn2); !strings.Contains(errs, want) {
		t.Errorf("refresh --apply progress lacks %q:\n%s", want, errs)
	}
	if m := member(); m != *fix.Version {
		t.Errorf("web runs %s after the refresh, want %s (the run's version)", m, fix.Version)
	}
	if n := exposed(fixedIn2); n != 0 {
		t.Errorf("%d instances still exposed to %s after the refresh", n, fixedIn2)
	}

	// Through --server: kiln serve's worker runs the pipeline, its host the
	// rollout. Nothing in it acts by itself: no trigger, no refresh block,
	// web follows nothing.
	op := strings.TrimSpace(mustRun(t, dir, "token", "create", "op", "--role", "operator"))
	mustRun(t, dir, "estate", "add", "demo", est)
	addr := startServe(t, dir, cli.ServeOptions{FollowEvery: time.Hour, TriggerEvery: time.Hour, SourcesEvery: time.Hour, AutopilotEvery: time.Hour})
	url := "http://" + addr
	t.Setenv("KILN_TOKEN", op)
	client := t.TempDir()
	importAdvisory(fixedIn3, "1.0-3")
	before = len(runs())
	out, errs, code = run(t, client, "--server", url, "fleet", "refresh", "--apply", "--advisory", fixedIn3)
	if code == 0 || !strings.Contains(errs, "--estate") || !strings.Contains(errs, "kiln estate list") {
		t.Errorf("refresh --apply through --server without --estate: exit %d; want a failure saying to name a registered estate\n%s%s", code, out, errs)
	}
	out, errs, code = run(t, client, "--server", url, "fleet", "refresh", "--apply", "--no-run", "--advisory", fixedIn3)
	if code != 0 || !strings.Contains(out, "blocked: ") {
		t.Errorf("refresh --apply --no-run through --server: exit %d; want 0 with web blocked\n%s%s", code, out, errs)
	}
	if n := len(runs()); n != before {
		t.Errorf("the refused refreshes through --server queued %d runs", n-before)
	}
	repo.Publish(t, "kiln-demo", "1.0-3")
	out, errs, code = run(t, client, "--server", url, "fleet", "refresh", "--apply", "--estate", "demo", "--advisory", fixedIn3)
	t.Logf("refresh --apply --server --estate demo: exit %d\n%s%s", code, out, errs)
	if code != 0 {
		t.Fatalf("refresh --apply through --server: exit %d\n%s%s", code, out, errs)
	}
	fix3 := newRun(before)
	// The run's trigger says why (the refresh) and who asked (the token).
	if fix3.Status != kiln.RunSucceeded || fix3.Version == nil || fix3.Version.Number <= fix.Version.Number ||
		!strings.HasPrefix(fix3.Trigger, "refresh: "+fixedIn3) || !strings.HasSuffix(fix3.Trigger, "(api by token:op)") {
		t.Fatalf("run %d: %s, made %v, trigger %q; want succeeded with a version after %s, triggered by the refresh for %s through token op",
			fix3.ID, fix3.Status, fix3.Version, fix3.Trigger, fix.Version, fixedIn3)
	}
	if want := fmt.Sprintf("run %d: appserver succeeded, %s", fix3.ID, fix3.Version); !strings.Contains(out, want) {
		t.Errorf("refresh --apply through --server: output lacks %q:\n%s", want, out)
	}
	// PollRuns prints each stage of the server's run as it ends.
	if want := fmt.Sprintf("run %d appserver: build passed", fix3.ID); !strings.Contains(errs, want) {
		t.Errorf("refresh --apply through --server: progress lacks %q:\n%s", want, errs)
	}
	if m := member(); m != *fix3.Version {
		t.Errorf("web runs %s after the refresh through --server, want %s", m, fix3.Version)
	}
	if n := exposed(fixedIn3); n != 0 {
		t.Errorf("%d instances still exposed to %s after the refresh through --server", n, fixedIn3)
	}
	if ids := leftovers(t, plat); len(ids) != 1 {
		t.Errorf("%d instances run, want web's 1: %v", len(ids), ids)
	}
}

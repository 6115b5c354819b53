package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/aptrepotest"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/store"
)

// patchAdvisory is the OSV record's id the patching test's feed serves.
const patchAdvisory = "KILN-DEMO-2026-1"

// TestPatchingOnAutopilot is issue 17's end-to-end test: appserver
// installs kiln-demo 1.0-1 from a local Debian repository (an apt_source)
// and runs as a 3-instance service following prod; an OSV feed says
// kiln-demo is fixed in 1.0-2. Once kiln serve runs, with no kiln command
// typed: the feed's sync shows the 3 instances exposed; the repository
// publishes 1.0-2; the packages trigger rebuilds appserver, the pipeline
// tests, scans and promotes it to prod; the service follows prod and rolls
// out; the advisory exposes no instance — while a load loop through the
// service's front end sees no failed request. It logs the "fix to fleet"
// time with its breakdown (MEASURE lines; docs/benchmarks.md).
func TestPatchingOnAutopilot(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "building and booting images needs root")
	}
	repo := aptrepotest.New(t) // needs dpkg-deb and apt-ftparchive
	origin := testenv.Image(t, "the patching end-to-end test")
	ctx := context.Background()
	repo.Publish(t, "kiln-demo", "1.0-1")
	feed := aptrepotest.NewFeed(t, aptrepotest.FixedRecord(patchAdvisory, "kiln-demo", "1.0-2", "high"))

	est := patchEstate(t, origin, repo.URL)
	dir := t.TempDir()
	t.Setenv("KILN_NO_AGENT", "1") // the test binary is no agent to bake into images
	t.Setenv("KILN_ESTATE", "")
	port := freeLoopbackPort(t)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	plat, err := local.New(local.Config{DataDir: dir, Artifacts: arts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rollout.StopFrontEnd(ctx, dir, "web")
		for _, id := range leftovers(t, plat) {
			_ = plat.Destroy(ctx, id)
		}
	})

	// The estate as a team would have it before the fix: appserver-1 built
	// and delivered to prod, the service on it, the feed registered.
	out := mustRun(t, dir, "run", est, "basic-linux", "appserver")
	t.Logf("first build:\n%s", tail(out, 20))
	mustRun(t, dir, "estate", "add", "demo", est)
	mustRun(t, dir, "advisory", "source", "add", "demo-osv", "--kind", "osv", "--url", feed.URL, "--every", "1m")
	mustRun(t, dir, "service", "create", "web", "--image", "appserver", "--env", "prod", "--replicas", "3",
		"--port", port, "--health", "http:/", "--bake-time", "1s", "--max-surge", "1")
	out = mustRun(t, dir, "rollout", "web")
	t.Logf("first rollout: %s", out)

	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	first, err := db.FindChannel(ctx, "appserver", "prod")
	if err != nil {
		t.Fatalf("appserver is not in prod after the first run: %v", err)
	}

	// Adding the source synced nothing: kiln serve will.
	if _, errs, code := run(t, dir, "fleet", "exposed", "--advisory", patchAdvisory); code == 0 || feed.Gets() != 0 {
		t.Fatalf("the advisory is known before kiln serve ran (exit %d, %d feed requests): %s", code, feed.Gets(), errs)
	}

	// The load loop through the front end, from before kiln serve starts
	// until the fleet is patched.
	load := startLoad(t, "http://"+port+"/")

	// From here on no kiln command is typed.
	startServe(t, dir, cli.ServeOptions{FollowEvery: 2 * time.Second, TriggerEvery: 2 * time.Second,
		SourcesEvery: 2 * time.Second, AutopilotEvery: 5 * time.Second})
	deadline := time.Now().Add(15 * time.Minute)
	waitFor := func(what string, done func() (bool, error)) time.Time {
		t.Helper()
		for {
			ok, err := done()
			if err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			if ok {
				t.Logf("%s: %s", time.Now().UTC().Format(time.RFC3339), what)
				return time.Now()
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not happen within 15 minutes", what)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	exposed := func() (int, bool) {
		out, _, code := run(t, dir, "-o", "json", "fleet", "exposed", "--advisory", patchAdvisory)
		if code != 0 {
			return 0, false // not imported yet
		}
		var e kiln.Exposure
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatalf("kiln fleet exposed -o json: %v\n%s", err, out)
		}
		return e.Instances, true
	}
	synced := waitFor("the feed's sync shows 3 exposed instances", func() (bool, error) {
		n, ok := exposed()
		if ok && n != 3 {
			return false, fmt.Errorf("%d instances exposed, want the service's 3 (all on kiln-demo 1.0-1)", n)
		}
		return ok, nil
	})

	// The fix is published.
	published := time.Now()
	repo.Publish(t, "kiln-demo", "1.0-2")
	t.Logf("%s: kiln-demo 1.0-2 published", published.UTC().Format(time.RFC3339))

	var fix *kiln.Run
	waitFor("a packages-triggered run of appserver succeeds", func() (bool, error) {
		runs, _, err := db.ListRuns(ctx, kiln.RunFilter{Limit: 20})
		if err != nil {
			return false, err
		}
		for _, r := range runs {
			if r.Image != "appserver" || !r.CreatedAt.After(published) {
				continue
			}
			// The packages check's reason for an apt source (pipeline/aptsource.go).
			if !strings.Contains(r.Trigger, "apt source demo") || !strings.Contains(r.Trigger, "published a new Release") {
				return false, fmt.Errorf("run %d of appserver was triggered by %q, not by the packages check on the demo repository", r.ID, r.Trigger)
			}
			switch r.Status {
			case kiln.RunSucceeded:
				fix = r
				return true, nil
			case kiln.RunFailed, kiln.RunCancelled, kiln.RunInterrupted:
				logs, _, _ := run(t, dir, "run", "logs", fmt.Sprint(r.ID))
				return false, fmt.Errorf("run %d %s: %s\n%s", r.ID, r.Status, r.Reason, tail(logs, 40))
			}
		}
		return false, nil
	})
	if fix.Version == nil || fix.Version.Number <= first.Version.Number {
		t.Fatalf("run %d made %v; want a version after %s", fix.ID, fix.Version, first.Name)
	}
	// The pipeline built, tested, scanned and delivered it.
	var stages []string
	for _, st := range fix.Stages {
		stages = append(stages, st.Name+":"+string(st.Status))
	}
	if got := strings.Join(stages, " "); got != "build:passed test:passed scan:passed prod:passed" {
		t.Errorf("run %d's stages: %s", fix.ID, got)
	}
	v, err := db.FindVersion(ctx, *fix.Version)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(v.Provenance.Packages, func(p kiln.Package) bool { return p.Name == "kiln-demo" && p.Version == "1.0-2" }) {
		t.Errorf("%s does not have kiln-demo 1.0-2 in its package manifest", v.Name)
	}
	var ch *kiln.Channel
	waitFor("prod points at the fixed version", func() (bool, error) {
		var err error
		ch, err = db.FindChannel(ctx, "appserver", "prod")
		return err == nil && ch.Version == *fix.Version, err
	})
	var ro *kiln.Rollout
	replaced := waitFor("web rolled out to the fixed version", func() (bool, error) {
		ros, err := db.ListRollouts(ctx, "web", 10)
		if err != nil {
			return false, err
		}
		for _, r := range ros {
			if r.To != *fix.Version {
				continue
			}
			switch r.State {
			case kiln.RolloutSucceeded:
				ro = r
				return true, nil
			case kiln.RolloutRolledBack, kiln.RolloutFailed:
				return false, fmt.Errorf("rollout %d to %s: %s (%s)", r.ID, ch.Name, r.State, r.Reason)
			}
		}
		return false, nil
	})
	if ro.StartedBy != rollout.FollowActor {
		t.Errorf("rollout %d was started by %q, not by kiln serve's follower", ro.ID, ro.StartedBy)
	}
	waitFor("no instance is exposed to "+patchAdvisory, func() (bool, error) {
		n, ok := exposed()
		return ok && n == 0, nil
	})
	okCount, failed := load.stop()
	t.Logf("load loop: %d requests answered, %d failed", okCount, len(failed))
	if len(failed) > 0 {
		t.Errorf("the front end failed %d of %d requests during the patch, first: %v", len(failed), okCount+int64(len(failed)), failed[0])
	}
	if okCount == 0 {
		t.Error("the load loop got no answer at all")
	}
	if ids := leftovers(t, plat); len(ids) != 3 {
		t.Errorf("after the rollout %d instances run, want the service's 3: %v", len(ids), ids)
	}

	// Fix to fleet: publication to the last instance replaced.
	t.Logf("MEASURE fix to fleet (issue 17): %s from kiln-demo 1.0-2's publication to the last of 3 instances replaced (appserver-%d → %s)",
		replaced.Sub(published).Round(100*time.Millisecond), first.Version.Number, ch.Name)
	t.Logf("MEASURE   feed: 0s (kiln serve's first sync imported the advisory; 3 exposed seen %s before the publication)",
		published.Sub(synced).Round(100*time.Millisecond))
	t.Logf("MEASURE   detect: %s (publication → run %d queued by the packages trigger)", fix.CreatedAt.Sub(published).Round(100*time.Millisecond), fix.ID)
	t.Logf("MEASURE   queue: %s (queued → claimed by the worker)", fix.StartedAt.Sub(fix.CreatedAt).Round(100*time.Millisecond))
	for _, s := range fix.Stages {
		if s.StartedAt.IsZero() {
			t.Logf("MEASURE   %s: skipped (%s)", s.Name, s.Status)
			continue
		}
		t.Logf("MEASURE   %s: %s", s.Name, s.FinishedAt.Sub(s.StartedAt).Round(10*time.Millisecond))
	}
	t.Logf("MEASURE   follow: %s (prod moved → rollout %d started)", ro.StartedAt.Sub(ch.UpdatedAt).Round(100*time.Millisecond), ro.ID)
	t.Logf("MEASURE   rollout: %s (3 instances, batches of 1, bake 1s)", ro.FinishedAt.Sub(ro.StartedAt).Round(100*time.Millisecond))
}

// copyOrigin copies the baked test image at origin to dst (an estate's
// origin tarball) and returns its sha256 in hex, for the origin block.
func copyOrigin(t *testing.T, origin, dst string) string {
	t.Helper()
	src, err := os.Open(origin)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(f, h), src); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// patchEstate writes the patching test's estate: basic-linux from the
// baked test image (its busybox httpd serves port 80), appserver on it
// with kiln-demo from the repository at repoURL, and the pipeline that
// rebuilds appserver when a package it installed has an update and
// delivers it to prod without a gate.
func patchEstate(t *testing.T, origin, repoURL string) string {
	t.Helper()
	est := t.TempDir()
	originSum := copyOrigin(t, origin, filepath.Join(est, "origin.tar"))
	def := fmt.Sprintf(`image "basic-linux" {
  origin {
    source = "origin.tar"
    sha256 = "%s"
  }
  tests = ["tests/basic-linux.yaml"]
}

image "appserver" {
  base     = image.basic-linux
  packages = ["kiln-demo"]
  apt_source "demo" {
    url     = "%s"
    suite   = "%s"
    trusted = true
  }
  tests = ["tests/appserver.yaml"]
}

pipeline "app" {
  images       = ["appserver"]
  on           = ["packages"]
  environments = ["prod"]
}
`, originSum, repoURL, aptrepotest.Suite)
	if err := os.MkdirAll(filepath.Join(est, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(est, "tests", "basic-linux.yaml"), []byte("file:\n  /etc/kiln-release:\n    exists: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(est, "tests", "appserver.yaml"), []byte("file:\n  /usr/share/kiln-demo/version:\n    exists: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(est, "estate.kiln.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	return est
}

// load is a bounded request loop through a front end.
type load struct {
	ok     atomic.Int64
	mu     sync.Mutex
	failed []string
	cancel context.CancelFunc
	done   chan struct{}
}

// startLoad sends GET url about 20 times a second until stop (or 20
// minutes), counting answers and failures (an error or a status other
// than 200).
func startLoad(t *testing.T, url string) *load {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	l := &load{cancel: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 5 * time.Second}
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			switch {
			case ctx.Err() != nil:
			case err != nil:
				l.fail(time.Now().UTC().Format(time.RFC3339Nano) + " " + err.Error())
			default:
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					l.fail(time.Now().UTC().Format(time.RFC3339Nano) + " " + resp.Status)
				} else {
					l.ok.Add(1)
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { l.stop() })
	return l
}

func (l *load) fail(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, s)
}

// stop ends the loop and returns the answered count and the failures.
func (l *load) stop() (int64, []string) {
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failed
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

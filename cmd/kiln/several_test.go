package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/registrytest"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// workerMain is the test binary as `kiln serve`'s pipeline worker
// (KILN_TEST_WORKER=1, configured like kiln by KILN_DATA_DIR,
// KILN_DATABASE, KILN_ARTIFACTS, KILN_ARTIFACTS_CREDENTIALS and
// KILN_SIGNING_KEY) until it is signalled or killed.
func workerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := cli.Config{DataDir: os.Getenv("KILN_DATA_DIR"), Database: os.Getenv("KILN_DATABASE"), SigningKey: os.Getenv("KILN_SIGNING_KEY"),
		Artifacts: os.Getenv("KILN_ARTIFACTS"), ArtifactsCredentials: os.Getenv("KILN_ARTIFACTS_CREDENTIALS")}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	db, signer, err := openDB(ctx, cfg, logger)
	if err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	defer db.Close()
	g := newGraph(db, signer, cfg, logger)
	if g.noPlatform != nil {
		fmt.Fprintln(os.Stderr, "worker:", g.noPlatform)
		return 1
	}
	wait := startPipeline(ctx, g, true, 0)
	<-ctx.Done()
	wait()
	return 0
}

// pgSchema makes an empty schema for the test on KILN_TEST_POSTGRES and
// returns a URL whose connections use it.
func pgSchema(t *testing.T) string {
	t.Helper()
	base := ci.Postgres(t)
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kiln_several_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		_ = admin.Close()
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		_ = admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Two kiln servers (pipeline workers with their own data directories) on
// one PostgreSQL and one registry: A claims a run and builds the version
// (pushing it to the registry) and is killed (kill -9) as the test stage
// begins; B marks the run interrupted, resumes it by itself (once,
// audited) and tests the version A built — pulling it from the registry
// into its own store, checking digest and signature, unpacking and
// booting it.
func TestSeveralServers(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "booting instances needs root")
	}
	pg := pgSchema(t)
	reg := registrytest.Start(t, registrytest.Options{})
	regURL := reg.URL("kiln")
	origin := releaseImage(t) // also requires the instance tools
	ctx := context.Background()

	est := t.TempDir()
	originSum := copyOrigin(t, origin, filepath.Join(est, "origin.tar"))
	def := fmt.Sprintf("image \"web\" {\n  origin {\n    source = \"origin.tar\"\n    sha256 = \"%s\"\n  }\n  tests = [\"tests/web.yaml\"]\n}\n", originSum)
	if err := os.MkdirAll(filepath.Join(est, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The instance B boots is the version A built: its release file says so.
	if err := os.WriteFile(filepath.Join(est, "tests", "web.yaml"), []byte("file:\n  /etc/kiln-release:\n    exists: true\n    contains:\n      - \"name=web-1\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(est, "estate.kiln.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}

	signer, _, err := sign.LoadOrCreateKey(t.TempDir(), "") // the key every machine shares
	if err != nil {
		t.Fatal(err)
	}
	key := signer.Path()
	creds := noCredentials(t)
	shared := []string{"--database", pg, "--signing-key", key, "--artifacts", regURL, "--artifacts-credentials", creds}
	dirQ, dirA, dirB := t.TempDir(), t.TempDir(), t.TempDir()
	t.Setenv("KILN_NO_AGENT", "1") // the in-process CLI below builds nothing, but keep images small
	out := mustRun(t, dirQ, append(shared, "run", "--detach", est, "web")...)
	t.Logf("queued: %s", out)

	worker := func(dir string) (*exec.Cmd, *syncBuffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		logs := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = logs, logs
		cmd.Env = append(os.Environ(), "KILN_TEST_WORKER=1", "KILN_NO_AGENT=1", "KILN_DATA_DIR="+dir, "KILN_DATABASE="+pg,
			"KILN_SIGNING_KEY="+key, "KILN_ARTIFACTS="+regURL, "KILN_ARTIFACTS_CREDENTIALS="+creds)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, logs
	}
	// Instances A's test stage may have started before it was killed are
	// destroyed through A's platform.
	t.Cleanup(func() {
		ents, _ := os.ReadDir(filepath.Join(dirA, "local", "instances"))
		if len(ents) == 0 {
			return
		}
		arts, err := artifact.Open(dirA)
		if err != nil {
			return
		}
		plat, err := local.New(local.Config{DataDir: dirA, Artifacts: arts})
		if err != nil {
			return
		}
		for _, e := range ents {
			_ = plat.Destroy(context.Background(), e.Name())
		}
	})

	db, err := store.Open(ctx, pg, dirQ, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	runOf := func() *kiln.Run {
		t.Helper()
		runs, _, err := db.ListRuns(ctx, kiln.RunFilter{})
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs: %v %v", runs, err)
		}
		return runs[0]
	}

	a, aLogs := worker(dirA)
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r := runOf()
		if len(r.Stages) > 0 && r.Stages[0].Name == "build" && r.Stages[0].Status == kiln.StagePassed {
			_ = a.Process.Signal(syscall.SIGKILL)
			break
		}
		if r.Status != kiln.RunQueued && r.Status != kiln.RunRunning || time.Now().After(deadline) {
			_ = a.Process.Signal(syscall.SIGKILL)
			_ = a.Wait()
			t.Fatalf("run on A: %s %+v; A's log:\n%s", r.Status, r.Stages, aLogs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = a.Wait()
	// From here on A's data directory is out of reach, as on another
	// machine: B has only the database, the registry and the shared key.
	// (Put back at cleanup, before A's instances are destroyed.)
	awayA := dirA + ".away"
	if err := os.Rename(dirA, awayA); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Rename(awayA, dirA) })
	r := runOf()
	if r.Version == nil {
		t.Fatalf("the build stage passed without a version: %+v", r)
	}
	v, err := db.FindVersion(ctx, *r.Version)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v.Provenance.Artifact.Ref, regURL+"@sha256:") {
		t.Errorf("version %s's artifact ref %s is not in the registry", v.Name, v.Provenance.Artifact.Ref)
	}
	hexd := strings.TrimPrefix(v.Provenance.Artifact.Digest, "sha256:")
	if _, err := os.Stat(filepath.Join(dirB, "artifacts", "sha256", hexd)); err == nil {
		t.Fatal("B has the artifact before it ran anything")
	}

	b, bLogs := worker(dirB)
	defer func() {
		_ = b.Process.Signal(syscall.SIGTERM)
		_ = b.Wait()
		if t.Failed() {
			t.Logf("A's log:\n%s\nB's log:\n%s", aLogs.String(), bLogs.String())
		}
	}()
	// B finds A's run held by a dead process: it marks it interrupted and
	// resumes it by itself (no `kiln run retry`), from the test stage.
	deadline = time.Now().Add(5 * time.Minute)
	for r = runOf(); !r.Status.Done() && time.Now().Before(deadline); r = runOf() {
		time.Sleep(500 * time.Millisecond)
	}
	if r.Status != kiln.RunSucceeded {
		t.Fatalf("the resumed run: %s (%s) %+v", r.Status, r.Reason, r.Stages)
	}
	if r.Resumes != 1 || !strings.Contains(r.Trigger, "resumed by worker") {
		t.Errorf("the run was not resumed automatically once: resumes=%d, trigger %q", r.Resumes, r.Trigger)
	}
	entries, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(entries, func(a, b *kiln.AuditEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	var acts []string
	for _, e := range entries {
		if e.Target == fmt.Sprintf("run %d", r.ID) && e.Action != "run.stage" {
			acts = append(acts, e.Action)
		}
	}
	if got, want := strings.Join(acts, " "), "run.queue run.start run.interrupted run.resume run.start run.succeeded"; got != want {
		t.Errorf("the run's audit: %s; want %s (A starts it, B marks it interrupted, resumes it once, and carries it)", got, want)
	}
	if !strings.Contains(bLogs.String(), "pipeline run resumed after an interruption") {
		t.Errorf("B's log does not say it resumed the run")
	}
	if r.Version == nil || *r.Version != v.Ref() {
		t.Errorf("the resumed run carried %v, not A's %s (it must not build again)", r.Version, v.Name)
	}
	for _, st := range r.Stages {
		if st.Name == "test" && st.Status != kiln.StagePassed {
			t.Errorf("test stage on B: %s %s", st.Status, st.Detail)
		}
	}
	// B tested what A built: it pulled the artifact into its own store.
	if _, err := os.Stat(filepath.Join(dirB, "artifacts", "sha256", hexd)); err != nil {
		t.Errorf("B's store has no copy of %s: %v", v.Provenance.Artifact.Digest, err)
	}
	// The image is in the registry with its provenance, and other tools
	// run it: its layers (the origin's, then the release step's) are
	// standard OCI layers.
	mustRun(t, t.TempDir(), append(shared, "version", "verify", v.Name)...)
	if b := podmanCat(t, reg.Host+"/kiln/web:1", "/etc/kiln-release"); !strings.Contains(string(b), "name=web-1\n") {
		t.Errorf("podman run of the layered web:1 from the registry: /etc/kiln-release %q", b)
	}

	if v, err = db.FindVersion(ctx, v.Ref()); err != nil { // its status now
		t.Fatal(err)
	}
	launchAndRollOut(t, dirB, shared, v, hexd)
}

// launchAndRollOut has machine B (dirB, with the shared flags), whose
// cache is emptied first, launch an instance of v and roll a service out
// to it: each pulls v's content from the registry, verifies it (digests,
// and the signature against the shared key), unpacks and boots it.
func launchAndRollOut(t *testing.T, dirB string, shared []string, v *kiln.Version, hexd string) {
	t.Helper()
	ctx := context.Background()
	onB := func(args ...string) string { return mustRun(t, dirB, append(shared, args...)...) }
	cold := func() {
		t.Helper()
		// A cold cache: no artifact, no unpacked root filesystem.
		for _, d := range v.Provenance.ContentDigests() {
			if err := os.Remove(filepath.Join(dirB, "artifacts", "sha256", strings.TrimPrefix(d, "sha256:"))); err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
		}
		if err := os.RemoveAll(filepath.Join(dirB, "local", "rootfs")); err != nil {
			t.Fatal(err)
		}
	}
	pulled := func(what string) {
		t.Helper()
		if _, err := os.Stat(filepath.Join(dirB, "artifacts", "sha256", hexd)); err != nil {
			t.Errorf("%s on B did not pull %s from the registry: %v", what, v.Provenance.Artifact.Digest, err)
		}
	}
	plat := func() *local.Platform {
		arts, err := artifact.Open(dirB)
		if err != nil {
			t.Fatal(err)
		}
		p, err := local.New(local.Config{DataDir: dirB, Artifacts: arts})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}()
	t.Cleanup(func() {
		_ = rollout.StopFrontEnd(ctx, dirB, "web")
		for _, id := range leftovers(t, plat) {
			_ = plat.Destroy(ctx, id)
		}
	})

	// A launch.
	cold()
	out := onB("instance", "launch", v.Name, "--name", "b-launch", "--env", "dev")
	if !strings.Contains(out, "b-launch running") {
		t.Errorf("launch of %s on B: %q", v.Name, out)
	}
	pulled("the launch")
	// What it runs is A's version: the release file of its root
	// filesystem (the overlay mounted for the running instance).
	rel, err := os.ReadFile(filepath.Join(dirB, "local", "instances", "b-launch", "rootfs", "etc", "kiln-release"))
	if err != nil || !strings.Contains(string(rel), "name="+v.Name+"\n") {
		t.Errorf("the instance B launched has /etc/kiln-release %q (%v), not %s's", rel, err, v.Name)
	}
	onB("instance", "destroy", "b-launch")

	// A rollout.
	cold()
	if v.Status != kiln.StatusReady {
		onB("version", "status", v.Name, "ready", "--reason", "tested on B")
	}
	port := freeLoopbackPort(t)
	onB("service", "create", "web", "--image", v.Image, "--env", "prod", "--replicas", "1", "--port", port, "--health", "http:/", "--bake-time", "1s")
	out = onB("rollout", "web", "--to", v.Name)
	if !strings.Contains(out, "succeeded") {
		t.Errorf("rollout of %s on B: %q", v.Name, out)
	}
	pulled("the rollout")
	var svc struct {
		Members []kiln.Member `json:"members"`
	}
	js := onB("service", "show", "web", "-o", "json")
	if err := json.Unmarshal([]byte(js), &svc); err != nil {
		t.Fatalf("service show: %v\n%s", err, js)
	}
	if len(svc.Members) != 1 || svc.Members[0].Version != v.Ref() {
		t.Errorf("web's members after the rollout on B: %+v; want one instance of %s", svc.Members, v.Name)
	}
	resp, err := http.Get("http://" + port + "/")
	if err != nil {
		t.Fatalf("web's front end on B: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("web's front end on B answers %s", resp.Status)
	}
	onB("service", "delete", "web", "--destroy-instances")
	if ids := leftovers(t, plat); len(ids) != 0 {
		t.Errorf("instances left on B: %v", ids)
	}
}

package pipeline_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/store"
)

// The pipeline tests build a two-image estate on the small bootable test
// image (an origin artifact, so no mirror is needed after it is baked
// once): web, and app built on web, with delivery to dev and an approval
// gate before prod.

const estateHCL = `
image "web" {
  origin {
    source = "origin.tar"
    sha256 = "DIGEST"
  }
  shell {
    inline = ["echo web > /srv/www/role"]
  }
  tests = ["tests/web.yaml"]
}

image "app" {
  base = image.web
  shell {
    inline = ["echo app > /srv/www/role"]
  }
  tests = ["tests/app.yaml"]
}

pipeline "all" {
  environments = ["dev", "prod"]
  environment "prod" {
    gate = "approval"
  }
}
`

type pipeEnv struct {
	dir    string // estate
	data   string // data directory
	db     *store.DB
	runner *pipeline.Runner
	plat   *local.Platform
	log    *bytes.Buffer
}

func tarDigest(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

var origin struct {
	once   sync.Once
	digest string
}

func newPipeEnv(t *testing.T) *pipeEnv {
	imagePath := testenv.Image(t, "pipeline run")
	origin.once.Do(func() { origin.digest = tarDigest(t, imagePath) })
	data, est := t.TempDir(), t.TempDir()
	if err := os.Link(imagePath, filepath.Join(est, "origin.tar")); err != nil {
		t.Fatal(err)
	}
	_ = os.MkdirAll(filepath.Join(est, "tests"), 0o755)
	for name, body := range map[string]string{
		"estate.kiln.hcl": strings.Replace(estateHCL, "DIGEST", origin.digest, 1),
		"tests/web.yaml":  "file:\n  /srv/www/role:\n    exists: true\n    contains: [\"web\"]\n",
		"tests/app.yaml":  "file:\n  /srv/www/role:\n    exists: true\n    contains: [\"app\"]\n",
	} {
		if err := os.WriteFile(filepath.Join(est, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, "", data, logger, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := testenv.Sign(t, db)
	arts, err := artifact.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	// As cmd/kiln wires it: test instances take the build's layer trees.
	plat, err := local.New(local.Config{DataDir: data, Artifacts: arts, Trees: &build.Trees{DataDir: data, Logger: logger}, ProbeBinary: exe, Supervisor: []string{exe, "__supervise"}, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"web", "app"} {
		if err := db.CreateImage(ctx, &kiln.Image{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	out := &bytes.Buffer{}
	r := &pipeline.Runner{
		Store: db, Registry: db,
		Builder: &build.Builder{Registry: db, Artifacts: arts, DataDir: data, Logger: logger},
		Tester: &pipeline.Tester{Registry: db, Artifacts: arts, Logger: logger,
			Launcher: &launch.Launcher{Registry: db, Platform: plat, Inventory: db, Key: key, Logger: logger}},
		Advisories: db, Logger: logger, Progress: out, Poll: 100 * time.Millisecond,
		LoadEstate: func(dir string, vars map[string]string) (*definition.Estate, error) {
			est, diags := definition.Load(dir, definition.Options{Vars: vars})
			if diags.HasErrors() {
				return nil, diags
			}
			return est, nil
		},
	}
	return &pipeEnv{dir: est, data: data, db: db, runner: r, plat: plat, log: out}
}

func (e *pipeEnv) runAll(ctx context.Context, t *testing.T, trigger string) []*kiln.Run {
	t.Helper()
	est, err := e.runner.LoadEstate(e.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := pipeline.Enqueue(ctx, e.db, est, nil, nil, trigger, false)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	if err := e.runner.Wait(ctx, ids); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	return e.reload(t, runs)
}

func (e *pipeEnv) reload(t *testing.T, runs []*kiln.Run) []*kiln.Run {
	t.Helper()
	out := make([]*kiln.Run, len(runs))
	for i, r := range runs {
		var err error
		if out[i], err = e.db.FindRun(context.Background(), r.ID); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func stageStatus(r *kiln.Run) string {
	parts := make([]string, len(r.Stages))
	for i, s := range r.Stages {
		parts[i] = s.Name + ":" + string(s.Status)
	}
	return strings.Join(parts, " ")
}

// hookServer records webhook requests whose signature verifies.
type hookServer struct {
	*httptest.Server
	mu     sync.Mutex
	events []map[string]any
	bad    int
}

func newHookServer(t *testing.T, secret string) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !pipeline.Verify(secret, body, r.Header.Get(pipeline.HeaderSignature)) {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		h.events = append(h.events, m)
	}))
	t.Cleanup(h.Close)
	return h
}

func TestPipelineRunsEstateInOrder(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t)
	ctx := context.Background()
	const secret = "a-webhook-secret-of-some-length"
	hooks := newHookServer(t, secret)
	if err := e.db.AddWebhook(ctx, &kiln.Webhook{URL: hooks.URL, Secret: secret, Events: []kiln.WebhookEvent{kiln.EventReady, kiln.EventPromoted}}); err != nil {
		t.Fatal(err)
	}

	runs := e.runAll(ctx, t, "test")
	web, app := runs[0], runs[1]
	if web.Image != "web" || web.Status != kiln.RunWaiting || app.Status != kiln.RunWaiting || app.After != web.ID {
		t.Fatalf("runs: web %s (%s), app %s (%s)\n%s", web.Status, stageStatus(web), app.Status, stageStatus(app), e.log)
	}
	if got := stageStatus(app); got != "build:passed test:passed scan:passed dev:passed prod:waiting" {
		t.Fatalf("app stages: %s", got)
	}
	for _, r := range []kiln.VersionRef{{Image: "web", Number: 1}, {Image: "app", Number: 1}} {
		v, err := e.db.FindVersion(ctx, r)
		if err != nil || v.Status != kiln.StatusReady {
			t.Fatalf("%s: %v %v", r, v.Status, err)
		}
	}
	av, _ := e.db.FindVersion(ctx, kiln.VersionRef{Image: "app", Number: 1})
	// The test stage took app-1's release layer from the build's tree (a
	// hard link of the step cache's file) instead of unpacking it.
	if n := len(av.Provenance.Artifact.Layers); n < 2 {
		t.Fatalf("app-1 has %d layers recorded", n)
	}
	top := av.Provenance.Artifact.Layers[len(av.Provenance.Artifact.Layers)-1]
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(e.data, "local", "layers", strings.TrimPrefix(top.DiffID, "sha256:"), "etc", "kiln-release"), &st); err != nil {
		t.Errorf("app-1's release layer in the layer cache: %v", err)
	} else if st.Nlink < 2 {
		t.Errorf("app-1's /etc/kiln-release in the layer cache is not a link of the build's tree (%d links)", st.Nlink)
	}
	if av.Provenance.Base == nil || *av.Provenance.Base != (kiln.VersionRef{Image: "web", Number: 1}) {
		t.Fatalf("app-1 built on %v, want web-1 (made ready in the same pass)", av.Provenance.Base)
	}
	if c, err := e.db.FindChannel(ctx, "app", "dev"); err != nil || c.Version.Number != 1 {
		t.Fatalf("dev channel: %+v %v", c, err)
	}
	if _, err := e.db.FindChannel(ctx, "app", "prod"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("prod promoted before approval: %v", err)
	}

	// Approval lets the run go on to prod.
	if _, err := e.db.ApproveStage(kiln.WithActor(ctx, "alice"), app.ID, "prod"); err != nil {
		t.Fatal(err)
	}
	if err := e.runner.Wait(ctx, []int64{app.ID}); err != nil {
		t.Fatal(err)
	}
	app = e.reload(t, []*kiln.Run{app})[0]
	if app.Status != kiln.RunSucceeded || app.Stages[4].ApprovedBy != "alice" {
		t.Fatalf("after approval: %s %s", app.Status, stageStatus(app))
	}
	if c, err := e.db.FindChannel(ctx, "app", "prod"); err != nil || c.Version.Number != 1 {
		t.Fatalf("prod channel: %+v %v", c, err)
	}

	// Webhooks: 2 ready versions and 3 promotions (web dev, app dev, app prod), signed.
	s := &pipeline.Sender{Store: e.db}
	if n, err := s.SendDue(ctx); err != nil || n != 5 {
		t.Fatalf("sent %d webhooks (%v), want 5", n, err)
	}
	if len(hooks.events) != 5 || hooks.bad != 0 {
		t.Fatalf("received %d events, %d with bad signatures", len(hooks.events), hooks.bad)
	}

	// Nothing changed: every run is up to date and ends at once.
	again := e.runAll(ctx, t, "again")
	if got := stageStatus(again[0]); !strings.HasPrefix(got, "build:skipped test:skipped scan:skipped") {
		t.Fatalf("unchanged web: %s", got)
	}
	// app-1 is in prod already: nothing to deliver, so nothing waits for
	// an approval and the run succeeds.
	if got := stageStatus(again[1]); again[1].Status != kiln.RunSucceeded || !strings.HasSuffix(got, "prod:skipped") {
		t.Fatalf("unchanged app: %s %s", again[1].Status, got)
	}

	// Status: up to date; a changed test file makes web (and app, whose
	// definition digest includes its base's) out of date, and the trigger
	// queues runs for them with the reason.
	ch := &pipeline.Checker{Registry: e.db, Runs: e.db}
	est, _ := e.runner.LoadEstate(e.dir, nil)
	sts, err := ch.Check(ctx, est)
	if err != nil || !sts[0].UpToDate || !sts[1].UpToDate {
		t.Fatalf("status: %+v %v", sts, err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "tests/web.yaml"), []byte("file:\n  /srv/www/role:\n    exists: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	est, _ = e.runner.LoadEstate(e.dir, nil)
	sts, err = ch.Check(ctx, est)
	if err != nil || sts[0].UpToDate || sts[0].Reasons[0].Trigger != "source" || !strings.Contains(sts[0].Reasons[0].Message, "definition estate.kiln.hcl changed") {
		t.Fatalf("status after a change: %+v %v", sts[0], err)
	}
	trig := &pipeline.Trigger{Runs: e.db, Schedules: e.db, Checker: ch, Estates: []pipeline.Estate{{Dir: e.dir}}, LoadEstate: e.runner.LoadEstate}
	queued, err := trig.Tick(ctx)
	if err != nil || len(queued) != 2 || queued[1].After != queued[0].ID || !strings.Contains(queued[0].Trigger, "changed") {
		t.Fatalf("trigger: %+v %v", queued, err)
	}
	if _, err := e.db.CancelRun(ctx, queued[1].ID, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.CancelRun(ctx, queued[0].ID, "test"); err != nil {
		t.Fatal(err)
	}

	logs, err := e.db.RunLogs(ctx, web.ID, 0, 0)
	if err != nil || len(logs) == 0 {
		t.Fatalf("run log: %d chunks, %v", len(logs), err)
	}
}

// TestPipelineInterruptedAndRetried stops the process's work during the
// test stage: the run is left interrupted, its test instance destroyed, and
// a retry resumes at the test stage without building again.
func TestPipelineInterruptedAndRetried(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t)
	ctx := context.Background()
	est, err := e.runner.LoadEstate(e.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := pipeline.Enqueue(ctx, e.db, est, nil, []string{"web"}, "test", false)
	if err != nil {
		t.Fatal(err)
	}
	id := runs[0].ID
	stop, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- e.runner.Wait(stop, []int64{id}) }()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		r, err := e.db.FindRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if i := r.StageIndex("test"); r.Stages[i].Status == kiln.StageRunning {
			break
		}
		if time.Now().After(deadline) || r.Status.Done() {
			t.Fatalf("test stage never started: %s %s\n%s", r.Status, stageStatus(r), e.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	r, _ := e.db.FindRun(ctx, id)
	if r.Status != kiln.RunInterrupted || r.Stages[1].Status != kiln.StageInterrupted || r.Reason == "" {
		t.Fatalf("after stop: %s (%s) %s", r.Status, r.Reason, stageStatus(r))
	}
	insts, _, err := e.db.ListInstances(ctx, kiln.InstanceFilter{Environment: pipeline.TestEnvironment})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 0 {
		t.Fatalf("test instances left: %+v", insts)
	}
	if _, err := e.db.RetryRun(ctx, id, "retry"); err != nil {
		t.Fatal(err)
	}
	if err := e.runner.Wait(ctx, []int64{id}); err != nil {
		t.Fatal(err)
	}
	r, _ = e.db.FindRun(ctx, id)
	if r.Status != kiln.RunWaiting || r.Version == nil || r.Version.Number != 1 || r.Stages[0].Status != kiln.StagePassed {
		t.Fatalf("after retry: %s %v %s\n%s", r.Status, r.Version, stageStatus(r), e.log)
	}
}

// TestPipelineScansOriginImageByItsRelease: an image from an origin
// tarball names no Debian suite, so the scan stage takes the release from
// the image's base-files and finds an advisory against its bash.
func TestPipelineScansOriginImageByItsRelease(t *testing.T) {
	t.Parallel()
	e := newPipeEnv(t)
	ctx := context.Background()
	if _, err := e.db.PutAdvisories(ctx, []*kiln.Advisory{
		{ID: "DSA-9999-1", Source: kiln.AdvisoryOSV, Packages: []kiln.AffectedPackage{
			{Ecosystem: "Debian:12", Release: "bookworm", Name: "bash", Fixed: "99.0-1", Status: kiln.AffectedFixed, Severity: "high"}}},
	}); err != nil {
		t.Fatal(err)
	}
	est, err := e.runner.LoadEstate(e.dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	runs, err := pipeline.Enqueue(ctx, e.db, est, nil, []string{"web"}, "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.runner.Wait(ctx, []int64{runs[0].ID}); err != nil {
		t.Fatalf("%v\n%s", err, e.log)
	}
	web := e.reload(t, runs)[0]
	if got := stageStatus(web); !strings.HasPrefix(got, "build:passed test:passed scan:failed") {
		t.Fatalf("web stages: %s (an advisory against its bash should fail the scan)\n%s", got, e.log)
	}
	for _, want := range []string{"release bookworm, from the image's base-files", "DSA-9999-1"} {
		if !strings.Contains(e.log.String(), want) {
			t.Errorf("run log lacks %q:\n%s", want, e.log)
		}
	}
}

package rollout

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/platform/memory"
	"github.com/kiln-project/kiln/store"
)

// memPlatform is the in-memory platform with gates for the Host's
// bookkeeping tests: Launch blocks until the launch gate opens (or ctx
// ends) and Destroy until the destroy gate opens, so a test can act while
// a rollout or a removal is under way.
type memPlatform struct {
	*memory.Platform
	launchGate  chan struct{}
	destroyGate chan struct{}
	destroyErr  error
	launching   chan string // an id each time a Launch begins
	destroying  chan string // an id each time a Destroy begins
}

func newMemPlatform() *memPlatform {
	open := make(chan struct{})
	close(open)
	p := &memPlatform{Platform: memory.New(), launchGate: make(chan struct{}), destroyGate: open,
		launching: make(chan string, 100), destroying: make(chan string, 100)}
	p.Launching = func(ctx context.Context, id string) error {
		p.launching <- id
		select {
		case <-p.launchGate:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	p.Destroying = func(_ context.Context, id string) error {
		p.destroying <- id
		<-p.destroyGate
		return p.destroyErr
	}
	return p
}

func (p *memPlatform) destroyedIDs() []string { return p.Destroyed() }

// hostEnv is a SQLite kiln with image appserver (version 1 ready) and
// service web, whose front end counts as running (the test holds its
// lock), so rollouts need no front-end process.
type hostEnv struct {
	db      *store.DB
	plat    *memPlatform
	dataDir string
	// key verifies the versions' signed provenance.
	key crypto.PublicKey
}

func newHostEnv(t *testing.T) *hostEnv {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	key := testenv.Sign(t, db)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	art := &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("a", 64)}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art}})
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	holdFrontEndLock(t, dir, "web")
	return &hostEnv{db: db, plat: newMemPlatform(), dataDir: dir, key: key}
}

// holdFrontEndLock starts a process that holds the service's front-end
// lock, as a front end does, until it gets SIGTERM (StopFrontEnd).
func holdFrontEndLock(t *testing.T, dataDir, service string) {
	t.Helper()
	lock, _, pidPath := proxyPaths(dataDir, service)
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `exec 9>"$0" && flock -n 9 && exec sleep 300`, lock)
	if err := cmd.Start(); err != nil {
		t.Fatalf("front-end stand-in: %v (needs sh, flock and sleep)", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for !FrontEndRunning(dataDir, service) {
		select {
		case <-exited:
			t.Fatal("the front-end stand-in exited without taking the lock")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// serve is one kiln serve life: a background Host; stop cancels its
// context and waits for its rollouts.
func (env *hostEnv) serve(t *testing.T) (h *Host, stop func()) {
	t.Helper()
	h = &Host{Engine: &Engine{Services: env.db, Rollouts: env.db, Registry: env.db, Launcher: env.launcher()},
		DataDir: env.dataDir, FrontEnd: func(string) ([]string, []string) { return []string{"/bin/false"}, nil }}
	ctx, cancel := context.WithCancel(context.Background())
	wait := h.Background(ctx)
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wait() }) }
	t.Cleanup(stop)
	return h, stop
}

// launcher launches on the in-memory platform, verifying with env's key.
func (env *hostEnv) launcher() *launch.Launcher {
	return &launch.Launcher{Registry: env.db, Platform: env.plat, Inventory: env.db, Key: env.key}
}

func opCtx() context.Context { return kiln.WithActor(context.Background(), "local:test") }

func want(t *testing.T, what string, err error, code string, contains ...string) {
	t.Helper()
	if kiln.ErrorCode(err) != code {
		t.Fatalf("%s: %v (code %q); want code %q", what, err, kiln.ErrorCode(err), code)
	}
	for _, c := range contains {
		if !strings.Contains(err.Error(), c) {
			t.Fatalf("%s: %q does not say %q", what, err, c)
		}
	}
}

// While a rollout of a service runs on the server, a second rollout and a
// deletion of the service are refused; once the server stopped it, the
// interrupted rollout still keeps the service from being deleted (its
// instances would be destroyed under it) until it is resumed.
func TestHostRolloutExcludesRolloutAndDelete(t *testing.T) {
	env := newHostEnv(t)
	h, stop := env.serve(t)
	ctx := opCtx()
	to := kiln.VersionRef{Image: "appserver", Number: 1}
	r, err := h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", To: to})
	if err != nil || r.State != kiln.RolloutRunning {
		t.Fatalf("start: %+v %v", r, err)
	}
	<-env.plat.launching // the rollout is launching its first instance
	_, err = h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", To: to})
	want(t, "second rollout", err, kiln.ECONFLICT, fmt.Sprintf("rollout %d of web runs", r.ID))
	_, err = h.RemoveService(ctx, "web", true)
	want(t, "delete during the rollout", err, kiln.ECONFLICT, fmt.Sprintf("rollout %d of web runs", r.ID))

	// The server stops: the rollout is interrupted, not failed.
	stop()
	p, err := h.RolloutProgress(ctx, r.ID, 0)
	if err != nil || p.Running || p.Error != "" || p.Code != "" || p.Rollout.State != kiln.RolloutRunning {
		t.Fatalf("after the stop: %+v %v; want an interrupted rollout without error", p, err)
	}
	destroyedAtStop := len(env.plat.destroyedIDs()) // the cut-short launch

	// The next server life will not delete the service under it.
	h2, _ := env.serve(t)
	destroyed, err := h2.RemoveService(ctx, "web", true)
	want(t, "delete with an interrupted rollout", err, kiln.ECONFLICT, "kiln rollout web --resume")
	if len(destroyed) != 0 || len(env.plat.destroyedIDs()) != destroyedAtStop {
		t.Fatalf("instances destroyed by the refused delete: %v (platform: %v)", destroyed, env.plat.destroyedIDs())
	}
	if _, err := env.db.FindService(ctx, "web"); err != nil {
		t.Fatalf("the refused delete removed the service: %v", err)
	}
}

// While a service is being deleted (its instances destroyed one by one),
// a rollout of it is refused; after, there is no service to roll out.
func TestHostDeleteExcludesRollout(t *testing.T) {
	env := newHostEnv(t)
	h, _ := env.serve(t)
	ctx := opCtx()
	to := kiln.VersionRef{Image: "appserver", Number: 1}
	if err := env.db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: "web-appserver-1-aaaaaa", Version: to, State: kiln.MemberActive, Address: "127.0.0.1:1"}); err != nil {
		t.Fatal(err)
	}
	env.plat.destroyGate = make(chan struct{})
	type result struct {
		destroyed []string
		err       error
	}
	done := make(chan result, 1)
	go func() {
		d, err := h.RemoveService(ctx, "web", true)
		done <- result{d, err}
	}()
	<-env.plat.destroying
	_, err := h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", To: to})
	want(t, "rollout during the delete", err, kiln.ECONFLICT, "web is being deleted")
	_, err = h.RemoveService(ctx, "web", true)
	want(t, "second delete", err, kiln.ECONFLICT, "web is being deleted")
	close(env.plat.destroyGate)
	res := <-done
	if res.err != nil || len(res.destroyed) != 1 {
		t.Fatalf("delete: %v %v", res.destroyed, res.err)
	}
	_, err = h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", To: to})
	want(t, "rollout after the delete", err, kiln.ENOTFOUND, "web")
}

// RolloutProgress pages through the kept lines with after and next; a
// partial line is not shown until it ends.
func TestHostProgressPaging(t *testing.T) {
	env := newHostEnv(t)
	h, _ := env.serve(t)
	ctx := opCtx()
	r := &kiln.Rollout{Service: "web", To: kiln.VersionRef{Image: "appserver", Number: 1}}
	if err := env.db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	log := &progressLog{running: true}
	h.bg.keep("web", r.ID, log)
	fmt.Fprint(log, "one\ntwo\nthr")
	page := func(after int) *kiln.RolloutProgress {
		t.Helper()
		p, err := h.RolloutProgress(ctx, r.ID, after)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := page(0)
	if strings.Join(p.Lines, "|") != "one|two" || p.Next != 2 || !p.Running {
		t.Fatalf("first page: %+v", p)
	}
	fmt.Fprint(log, "ee\nfour\n")
	if p = page(p.Next); strings.Join(p.Lines, "|") != "three|four" || p.Next != 4 {
		t.Fatalf("second page: %+v", p)
	}
	if p = page(p.Next); len(p.Lines) != 0 || p.Next != 4 {
		t.Fatalf("nothing new: %+v", p)
	}
	if p = page(1); strings.Join(p.Lines, "|") != "two|three|four" || p.Next != 4 {
		t.Fatalf("from line 1: %+v", p)
	}
	if p = page(10); len(p.Lines) != 0 || p.Next != 10 {
		t.Fatalf("past the end: %+v", p)
	}
	if p, err := h.RolloutProgress(ctx, 9999, 0); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("unknown rollout: %+v %v", p, err)
	}
}

// The server keeps the lines of the last maxProgressLogs rollouts: older
// ended ones are forgotten (their record stays), a running one never is.
func TestHostProgressEviction(t *testing.T) {
	env := newHostEnv(t)
	h, _ := env.serve(t)
	ids := make([]int64, maxProgressLogs+2)
	for i := range ids {
		ids[i] = int64(i + 1)
		log := &progressLog{running: i == 1} // the second one still runs
		fmt.Fprintf(log, "rollout %d\n", ids[i])
		h.bg.keep(fmt.Sprintf("svc-%d", i), ids[i], log)
	}
	kept := func(id int64) bool {
		h.bg.mu.Lock()
		defer h.bg.mu.Unlock()
		return h.bg.logs[id] != nil
	}
	// The first is forgotten; the second runs, so it and all after it stay.
	if kept(ids[0]) || !kept(ids[1]) || !kept(ids[len(ids)-1]) {
		t.Fatalf("kept: first %v, running %v, last %v; want false, true, true", kept(ids[0]), kept(ids[1]), kept(ids[len(ids)-1]))
	}
	// Once it ended, the next keep forgets it and the one after it.
	h.bg.logs[ids[1]].mu.Lock()
	h.bg.logs[ids[1]].running = false
	h.bg.logs[ids[1]].mu.Unlock()
	h.bg.keep("svc-next", int64(len(ids)+1), &progressLog{})
	h.bg.mu.Lock()
	n := len(h.bg.logs)
	h.bg.mu.Unlock()
	if kept(ids[1]) || kept(ids[2]) || !kept(ids[3]) || n != maxProgressLogs {
		t.Fatalf("after the running one ended: %d logs kept, second %v, third %v, fourth %v", n, kept(ids[1]), kept(ids[2]), kept(ids[3]))
	}
}

// The server's shutdown waits for a rollout whose start is still under
// way (its front end starting), not only for the running ones.
func TestHostStopWaitsForStartingRollout(t *testing.T) {
	env := newHostEnv(t)
	ctx := opCtx()
	if err := env.db.CreateService(ctx, &kiln.Service{Name: "api", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:2"}); err != nil {
		t.Fatal(err)
	}
	h, stop := env.serve(t)
	starting := make(chan struct{})
	// A front end that never listens and exits after a while: the start
	// fails, after the server was told to stop.
	h.FrontEnd = func(string) ([]string, []string) {
		close(starting)
		return []string{"sh", "-c", "sleep 1"}, nil
	}
	started := make(chan error, 1)
	go func() {
		_, err := h.StartRollout(ctx, kiln.RolloutRequest{Service: "api", To: kiln.VersionRef{Image: "appserver", Number: 1}})
		started <- err
	}()
	<-starting
	stop()
	select {
	case err := <-started:
		want(t, "start with a front end that exits", err, kiln.EUNAVAILABLE, "front end of api exited")
	default:
		t.Fatal("the server's shutdown returned while a rollout was still starting")
	}
	_, err := h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", To: kiln.VersionRef{Image: "appserver", Number: 1}})
	want(t, "start after the stop", err, kiln.EUNAVAILABLE, "stopping")
}

// An internal error a rollout ends with reaches the server's log, not the
// viewers following the rollout: they read a generic message.
func TestHostRedactsInternalErrors(t *testing.T) {
	env := newHostEnv(t)
	h, _ := env.serve(t)
	var logb bytes.Buffer
	var logMu sync.Mutex
	h.Engine.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logb, mu: &logMu}, nil))
	ctx := opCtx()
	to := kiln.VersionRef{Image: "appserver", Number: 1}
	// An interrupted rollout whose cut-short launch cannot be destroyed.
	r := &kiln.Rollout{Service: "web", To: to}
	if err := env.db.CreateRollout(ctx, r); err != nil {
		t.Fatal(err)
	}
	if err := env.db.PutMember(ctx, &kiln.Member{Service: "web", InstanceID: "web-appserver-1-bbbbbb", Version: to, State: kiln.MemberLaunching, Rollout: r.ID}); err != nil {
		t.Fatal(err)
	}
	env.plat.destroyErr = errors.New("rm /var/lib/kiln/secret-path: device busy")
	if _, err := h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", Resume: true}); err != nil {
		t.Fatal(err)
	}
	var p *kiln.RolloutProgress
	for p == nil || p.Running {
		time.Sleep(10 * time.Millisecond)
		var err error
		if p, err = h.RolloutProgress(ctx, r.ID, 0); err != nil {
			t.Fatal(err)
		}
	}
	if p.Code != kiln.EINTERNAL || p.Error != "internal error; the server log has the details" {
		t.Fatalf("progress: code %q, error %q; want the generic internal error", p.Code, p.Error)
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logb.String(), "secret-path: device busy") {
		t.Fatalf("the server log lacks the error:\n%s", logb.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// A rollout to a version whose recorded artifact is not the one its
// signed provenance names is refused before it is recorded, and nothing
// is launched.
func TestRolloutRefusesTamperedArtifact(t *testing.T) {
	env := newHostEnv(t)
	h, _ := env.serve(t)
	ctx := opCtx()
	to := kiln.VersionRef{Image: "appserver", Number: 1}
	testenv.SwapArtifact(t, env.dataDir, "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64))
	_, err := h.StartRollout(ctx, kiln.RolloutRequest{Service: "web", To: to})
	want(t, "rollout of a swapped artifact", err, kiln.ECONFLICT, "refusing to launch")
	if rs, err := env.db.ListRollouts(ctx, "web", 10); err != nil || len(rs) != 0 {
		t.Errorf("rollouts after the refusal: %v %v", rs, err)
	}
	select {
	case id := <-env.plat.launching:
		t.Errorf("launched %s", id)
	default:
	}
}

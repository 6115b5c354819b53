package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// TestMain lets the test binary play the processes kiln starts from its
// own executable: the instance supervisor, the probe, the agent baked
// into images as /usr/local/bin/kiln (`kiln agent checkin`), and a service's
// front end (`kiln --data-dir DIR __service-proxy NAME`).
func TestMain(m *testing.M) {
	if os.Getenv("KILN_TEST_PUBLISH") != "" {
		os.Exit(publishMain())
	}
	if os.Getenv("KILN_TEST_WORKER") == "1" {
		os.Exit(workerMain())
	}
	if len(os.Args) > 1 && (os.Args[1] == "__supervise" || os.Args[1] == "probe" || os.Args[1] == "agent" || slices.Contains(os.Args[1:], "__service-proxy")) {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := NewMain().App().Run(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// brokenImage is the test image whose HTTP server listens on 8081, not on
// the service's port 80: its instances boot but never pass the health
// check, so a rollout to it rolls back. Cached beside the test image.
func brokenImage(t *testing.T, base string) string {
	t.Helper()
	out := filepath.Join(testenv.CacheDir(), "remote-rollout-broken-"+strings.TrimSuffix(filepath.Base(base), ".tar")+".tar")
	if _, err := os.Stat(out); err == nil {
		return out
	}
	dir := t.TempDir()
	unit := "etc/systemd/system/kiln-httpd.service"
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(unit)), 0o755); err != nil {
		t.Fatal(err)
	}
	body := "[Unit]\nDescription=kiln test HTTP server on the wrong port\n[Service]\nExecStart=/bin/busybox httpd -f -p 8081 -h /srv/www\n[Install]\nWantedBy=multi-user.target\n"
	if err := os.WriteFile(filepath.Join(dir, unit), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	if b, err := exec.Command("cp", base, tmp).CombinedOutput(); err != nil {
		t.Fatalf("copy image: %v: %s", err, b)
	}
	// A later tar member replaces an earlier one on extraction.
	if b, err := exec.Command("tar", "--append", "-f", tmp, "--owner=0", "--group=0", "--numeric-owner", "-C", dir, unit).CombinedOutput(); err != nil {
		os.Remove(tmp)
		t.Fatalf("append to image: %v: %s", err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// seedRollout records, in the kiln of dir (signing as kiln does), image
// appserver with version 1 (the test image, ready) and version 2 (the
// broken image, only tested). It returns the open database and signer.
func seedRollout(t *testing.T, dir string, images []string) (*store.DB, *sign.Signer) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	signer, _, err := sign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	db.SealVersionsWith(signer.Seal)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for i, img := range images {
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		art, err := arts.Put(ctx, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art, BuiltBy: "test"}})
		if err != nil {
			t.Fatal(err)
		}
		sts := []kiln.Status{kiln.StatusTested, kiln.StatusReady}
		if i > 0 {
			sts = sts[:1]
		}
		for _, st := range sts {
			if _, err := db.SetStatus(ctx, v.Ref(), st, "test"); err != nil {
				t.Fatal(err)
			}
		}
	}
	return db, signer
}

// serverRolloutHost is kiln serve's rollout host on the kiln of dir.
func serverRolloutHost(db *store.DB, signer *sign.Signer, arts *artifact.Store, plat *local.Platform, dir string, logger *slog.Logger) *rollout.Host {
	g := &graph{db: db, signer: signer, cfg: cli.Config{DataDir: dir}, logger: logger}
	return g.on(arts, plat).rolloutHost(nil)
}

func freeLoopbackPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// webPlatform opens the local platform of dir (the one the kiln commands
// run in the test use) and, when the test ends, stops service web's front
// end and destroys every instance still running there.
func webPlatform(t testing.TB, dir string) *local.Platform {
	t.Helper()
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	plat, err := local.New(local.Config{DataDir: dir, Artifacts: arts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = rollout.StopFrontEnd(ctx, dir, "web")
		for _, id := range leftovers(t, plat) {
			_ = plat.Destroy(ctx, id)
		}
	})
	return plat
}

// leftovers lists the instances the local platform of dir still runs.
func leftovers(t testing.TB, plat *local.Platform) []string {
	t.Helper()
	sts, err := plat.Reconcile(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range sts {
		ids = append(ids, s.ID)
	}
	return ids
}

// normalizeRollout blanks what differs between two runs of the same
// rollout: durations, loopback ports and instance suffixes.
func normalizeRollout(s string) string {
	for _, r := range []struct{ re, to string }{
		{`127\.0\.0\.1:\d+`, "ADDR"},
		{`(web-appserver-\d+)-[0-9a-f]{6}`, "${1}-ID"},
		{`\d+(\.\d+)?(µs|ms|s|m|h)(\d+(\.\d+)?(µs|ms|s))*`, "DUR"},
		{`(failed its health check \(http:/\)): .*`, "${1}: ERR"},
		{`"pid": \d+`, `"pid": PID`},
		{`"batch_times_ns": \[[^\]]*\]`, `"batch_times_ns": [TIMES]`},
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.to)
	}
	return s
}

// environOf returns the environment of process pid.
func environOf(t *testing.T, pid string) []string {
	t.Helper()
	env, err := os.ReadFile(filepath.Join("/proc", pid, "environ"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
}

// checkChildEnv checks that the processes the server left running (the
// front end of web, the instances' supervisors) did not inherit its
// tokens and credentials, and that the front end got its database.
func checkChildEnv(t *testing.T, dataDir string, plat *local.Platform) {
	t.Helper()
	leaked := func(env []string) []string {
		var out []string
		for _, kv := range env {
			if strings.HasPrefix(kv, "KILN_TOKEN=") || strings.HasPrefix(kv, "KILN_SERVER=") || strings.Contains(kv, "secret-canary") {
				out = append(out, kv)
			}
		}
		return out
	}
	pid, err := os.ReadFile(filepath.Join(dataDir, "services", "web.pid"))
	if err != nil {
		t.Fatal(err)
	}
	fe := environOf(t, strings.TrimSpace(string(pid)))
	if l := leaked(fe); len(l) > 0 {
		t.Errorf("the front end inherited %v", l)
	}
	if !slices.ContainsFunc(fe, func(kv string) bool { return strings.HasPrefix(kv, "PATH=") }) {
		t.Errorf("the front end has no PATH: %v", fe)
	}
	ids := leftovers(t, plat)
	if len(ids) == 0 {
		t.Fatal("no instance runs after the rollout")
	}
	for _, id := range ids {
		// The supervisor records its pid in the instance's state.json.
		b, err := os.ReadFile(filepath.Join(dataDir, "local", "instances", id, "state.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec struct {
			PID int `json:"supervisor_pid"`
		}
		if err := json.Unmarshal(b, &rec); err != nil || rec.PID <= 0 {
			t.Fatalf("state.json of %s: %v; no supervisor pid in %s", id, err, b)
		}
		if l := leaked(environOf(t, strconv.Itoa(rec.PID))); len(l) > 0 {
			t.Errorf("the supervisor of %s inherited %v", id, l)
		}
	}
}

// Through --server, `kiln service` and `kiln rollout` work on the server's
// machine: the server runs the rollout on its real nspawn instances in the
// background and the command follows it, with the same output, progress
// lines and exit codes as the same commands on a local kiln; a viewer is
// refused; nothing is left running.
func TestRemoteRolloutSameAsLocal(t *testing.T) {
	base := testenv.Image(t, "remote rollout test")
	images := []string{base, brokenImage(t, base)}
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)

	// The server's kiln.
	sdir := t.TempDir()
	db, signer := seedRollout(t, sdir, images)
	t.Cleanup(func() { db.Close() })
	arts, err := artifact.Open(sdir)
	if err != nil {
		t.Fatal(err)
	}
	splat, err := local.New(local.Config{DataDir: sdir, Artifacts: arts, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	h := serverRolloutHost(db, signer, arts, splat, sdir, logger)
	bctx, stopRollouts := context.WithCancel(ctx)
	wait := h.Background(bctx)
	toks := map[kiln.Role]string{}
	for _, r := range []kiln.Role{kiln.RoleViewer, kiln.RoleOperator} {
		if _, toks[r], err = db.CreateToken(ctx, &kiln.NewToken{Name: string(r), Role: r}); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(api.New(api.Config{AuthCacheTTL: -1, Rollouts: h}.WithStores(db)))
	t.Cleanup(func() {
		ts.Close()
		stopRollouts()
		wait()
		_ = rollout.StopFrontEnd(ctx, sdir, "web")
		for _, id := range leftovers(t, splat) {
			_ = splat.Destroy(ctx, id)
		}
	})

	// The local kiln, seeded the same way.
	ldir := t.TempDir()
	ldb, _ := seedRollout(t, ldir, images)
	ldb.Close()
	larts, err := artifact.Open(ldir)
	if err != nil {
		t.Fatal(err)
	}
	lplat, err := local.New(local.Config{DataDir: ldir, Artifacts: larts, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = rollout.StopFrontEnd(ctx, ldir, "web")
		for _, id := range leftovers(t, lplat) {
			_ = lplat.Destroy(ctx, id)
		}
	})

	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KILN_TOKEN", toks[kiln.RoleOperator])
	// A credential of the server's environment its children must not get.
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-canary")
	client := t.TempDir() // the remote CLI's own data directory: unused
	steps := []struct {
		args []string
		code int
	}{
		{[]string{"service", "create", "web", "--image", "appserver", "--env", "prod", "--replicas", "1", "--port", "PORT", "--health", "http:/", "--bake-time", "1s"}, 0},
		{[]string{"rollout", "web"}, 0},                                           // the latest ready version: appserver-1
		{[]string{"rollout", "web", "--to", "appserver-2"}, 1},                    // tested, not ready
		{[]string{"rollout", "web", "--to", "appserver-2", "--allow-unready"}, 1}, // never healthy: rolled back
		{[]string{"rollout", "web", "--resume"}, 1},                               // nothing to resume
		{[]string{"service", "list"}, 0},
		{[]string{"service", "show", "web", "-o", "json"}, 0},
		{[]string{"fleet", "refresh"}, 0},
		{[]string{"fleet", "refresh", "--apply"}, 0},
		{[]string{"rollout", "nosuch"}, 1},
		{[]string{"service", "delete", "web"}, 1}, // it has an instance
		{[]string{"service", "delete", "web", "--destroy-instances"}, 0},
	}
	sport, lport := freeLoopbackPort(t), freeLoopbackPort(t)
	for _, st := range steps {
		remoteArgs := []string{"--server", ts.URL}
		localArgs := []string{}
		for _, a := range st.args {
			remoteArgs = append(remoteArgs, strings.ReplaceAll(a, "PORT", sport))
			localArgs = append(localArgs, strings.ReplaceAll(a, "PORT", lport))
		}
		lout, lerr, lcode := run(t, ldir, localArgs...)
		rout, rerr, rcode := run(t, client, remoteArgs...)
		name := strings.Join(st.args, " ")
		if lcode != st.code {
			t.Fatalf("local kiln %s: exit %d, want %d\n%s%s", name, lcode, st.code, lout, lerr)
		}
		if rcode != lcode {
			t.Errorf("kiln --server %s: exit %d, local %d\n%s%s", name, rcode, lcode, rout, rerr)
		}
		lo, ro := normalizeRollout(strings.ReplaceAll(lout, lport, "PORT")), normalizeRollout(strings.ReplaceAll(rout, sport, "PORT"))
		if d := cmp.Diff(normalize(lo), normalize(ro)); d != "" {
			t.Errorf("kiln %s: stdout differs (-local +remote):\n%s", name, d)
		}
		le, re := normalizeRollout(strings.ReplaceAll(lerr, lport, "PORT")), normalizeRollout(strings.ReplaceAll(rerr, sport, "PORT"))
		if d := cmp.Diff(normalize(le), normalize(re)); d != "" {
			t.Errorf("kiln %s: stderr (progress) differs (-local +remote):\n%s", name, d)
		}
		t.Logf("kiln %s: exit %d\n%s%s", name, rcode, rout, rerr)
		if name == "rollout web" && !strings.Contains(rerr, "rolling out appserver-1 (the latest ready version)") {
			t.Errorf("remote rollout progress does not say which version it chose:\n%s", rerr)
		}
		if name == "rollout web" {
			checkChildEnv(t, sdir, splat)
		}
		if strings.HasSuffix(name, "--allow-unready") && !strings.Contains(rout, "rolled-back") {
			t.Errorf("rollout to the broken version: %s", rout)
		}
	}

	// A viewer may read services but not change them.
	t.Setenv("KILN_TOKEN", toks[kiln.RoleViewer])
	for _, args := range [][]string{{"rollout", "web", "--to", "appserver-1"}, {"service", "create", "api", "--image", "appserver", "--env", "prod", "--port", "18555"}, {"service", "stop", "web"}} {
		if _, errs, code := run(t, client, append([]string{"--server", ts.URL}, args...)...); code != 1 || !strings.Contains(errs, "operator") {
			t.Errorf("viewer: kiln %s: exit %d, stderr %q; want exit 1 naming the operator role", strings.Join(args, " "), code, errs)
		}
	}
	if ids := leftovers(t, splat); len(ids) != 0 {
		t.Errorf("instances left on the server's platform: %v", ids)
	}
	if ids := leftovers(t, lplat); len(ids) != 0 {
		t.Errorf("instances left on the local platform: %v", ids)
	}
	if rollout.FrontEndRunning(sdir, "web") {
		t.Errorf("the server's front end of web still runs after the service was deleted")
	}
}

// When kiln serve stops in the middle of a rollout, the rollout stops at
// its next step: the instance it was launching is destroyed, the serving
// ones stay recorded as the service's members, the rollout stays recorded
// as running, and the command following it says to resume. A server
// started again resumes it (--resume) to the end; nothing is orphaned.
func TestRemoteRolloutInterruptedAndResumed(t *testing.T) {
	base := testenv.Image(t, "remote rollout test")
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	sdir := t.TempDir()
	db, signer := seedRollout(t, sdir, []string{base})
	t.Cleanup(func() { db.Close() })
	arts, err := artifact.Open(sdir)
	if err != nil {
		t.Fatal(err)
	}
	plat, err := local.New(local.Config{DataDir: sdir, Artifacts: arts, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	_, tok, err := db.CreateToken(ctx, &kiln.NewToken{Name: "op", Role: kiln.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	// serveRollouts is one `kiln serve` life: its host and API. stop
	// stops its rollouts as kiln serve's shutdown does, but leaves the API
	// answering (closed at cleanup), so a follower sees how they ended.
	serveRollouts := func() (*rollout.Host, string, func()) {
		h := serverRolloutHost(db, signer, arts, plat, sdir, logger)
		bctx, cancel := context.WithCancel(ctx)
		wait := h.Background(bctx)
		ts := httptest.NewServer(api.New(api.Config{AuthCacheTTL: -1, Rollouts: h}.WithStores(db)))
		var once bool
		stop := func() {
			if !once {
				once = true
				cancel()
				wait()
			}
		}
		t.Cleanup(func() { stop(); ts.Close() })
		return h, ts.URL, stop
	}
	t.Cleanup(func() {
		_ = rollout.StopFrontEnd(ctx, sdir, "web")
		for _, id := range leftovers(t, plat) {
			_ = plat.Destroy(ctx, id)
		}
	})
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KILN_TOKEN", tok)
	client := t.TempDir()

	h1, url1, stop1 := serveRollouts()
	mustRun(t, client, "--server", url1, "service", "create", "web", "--image", "appserver", "--env", "prod", "--replicas", "2",
		"--port", freeLoopbackPort(t), "--health", "http:/", "--bake-time", "0s")
	type result struct {
		out, errs string
		code      int
	}
	done := make(chan result, 1)
	go func() {
		out, errs, code := run(t, client, "--server", url1, "rollout", "web", "--to", "appserver-1")
		done <- result{out, errs, code}
	}()
	// Stop the server as soon as the second batch is launching.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := db.ActiveRollout(ctx, "web")
		if err == nil {
			p, err := h1.RolloutProgress(ctx, r.ID, 0)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(p.Lines, func(l string) bool { return strings.Contains(l, "--> batch 2") }) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the rollout never reached its second batch")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop1()
	res := <-done
	// The command polled the server, still up, and saw the rollout end
	// interrupted (not failed): it says how to go on and exits 1.
	if res.code != 1 || !strings.Contains(res.errs, "rollout 1 of web was interrupted on the server") ||
		!strings.Contains(res.errs, "kiln rollout web --resume") || !strings.Contains(res.out, "rollout 1 of web to appserver-1: running") {
		t.Fatalf("following an interrupted rollout: exit %d\n%s%s", res.code, res.out, res.errs)
	}
	r, err := db.ActiveRollout(ctx, "web")
	if err != nil || r.State != kiln.RolloutRunning || r.Batch != 1 {
		t.Fatalf("after the stop: rollout %+v, %v; want running with 1 batch done", r, err)
	}
	// Exactly the recorded members run: the interrupted launch was destroyed.
	ms, err := db.ListMembers(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, m := range ms {
		members = append(members, m.InstanceID)
		if m.State != kiln.MemberActive {
			t.Errorf("member %s is %s after the stop", m.InstanceID, m.State)
		}
	}
	running := leftovers(t, plat)
	slices.Sort(members)
	slices.Sort(running)
	if len(members) != 1 || !slices.Equal(members, running) {
		t.Fatalf("after the stop: members %v, instances on the platform %v; want the one serving instance in both", members, running)
	}

	// The next server life resumes it.
	_, url2, _ := serveRollouts()
	out, errs, code := run(t, client, "--server", url2, "rollout", "web", "--resume")
	if code != 0 || !strings.Contains(out, "rollout 1 of web to appserver-1: succeeded") || !strings.Contains(errs, "resuming rollout 1 of web") {
		t.Fatalf("resume: exit %d\n%s%s", code, out, errs)
	}
	out = mustRun(t, client, "--server", url2, "service", "delete", "web", "--destroy-instances")
	if strings.Count(out, "destroyed") != 2 {
		t.Errorf("delete: %s", out)
	}
	if ids := leftovers(t, plat); len(ids) != 0 {
		t.Errorf("instances left: %v", ids)
	}
}

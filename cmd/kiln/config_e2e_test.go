package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/store"
)

// TestLaunchConfigEndToEnd is issue 22's end-to-end test, on the example
// estate's dev and prod configuration: the same appserver version
// launched in dev and in prod serves each environment's banner; both
// instances' agents check in to a kiln serve on 127.0.0.1 (reached through
// the local platform's loopback egress) with the token each was given; the
// tokens, given by file, appear in neither the database, the audit log,
// ps, nor the server's log; and changing prod's setting rolls the prod
// service (2 instances) with no failed request while the dev instance is
// left alone.
func TestLaunchConfigEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "building and booting images needs root")
	}
	origin := testenv.Image(t, "the launch-configuration end-to-end test")
	ctx := context.Background()
	est := exampleEstateOn(t, origin)
	dir := t.TempDir()
	secrets := t.TempDir()
	server := freeLoopbackPort(t)
	t.Setenv("KILN_VAR_kiln_server", "http://"+server)
	t.Setenv("KILN_VAR_secrets", secrets)
	t.Setenv("KILN_ESTATE", est)
	plat := webPlatform(t, dir)

	// appserver, built once from the example estate (basic-linux is the
	// small test image, so only appserver's own steps are baked).
	out, errs, code := run(t, dir, "run", est, "basic-linux", "appserver")
	if code != 0 {
		rep := ""
		if db, err := store.Open(ctx, "", dir, nil, time.Now); err == nil {
			if a, err := db.Attachment(ctx, kiln.VersionRef{Image: "appserver", Number: 1}, "test-report.json"); err == nil {
				rep = string(a.Data)
			}
			db.Close()
		}
		t.Fatalf("kiln run: exit %d: %s\n%s\ntest report: %s", code, lastLines(out, 15), errs, rep)
	}
	t.Logf("build:\n%s", lastLines(out, 15))
	version := latestVersion(t, dir, "appserver")

	// One agent token per environment, given by file.
	tokens := map[string]string{}
	for _, env := range []string{"dev", "prod"} {
		out := mustRun(t, dir, "token", "create", "agent-"+env, "--role", "agent")
		tok := regexp.MustCompile(`kiln_[a-z0-9_]+`).FindString(out)
		if tok == "" {
			t.Fatalf("token create printed no secret: %q", out)
		}
		tokens[env] = tok
		if err := os.WriteFile(filepath.Join(secrets, "agent-"+env+".token"), []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := startServeAt(t, dir, server)

	// The same version in dev and in prod, each with its environment's
	// configuration: different banners.
	banner := map[string]string{}
	for _, env := range []string{"dev", "prod"} {
		out := mustRun(t, dir, "instance", "launch", version, "--env", env, "--estate", est, "--name", env+"-1", "--port", "127.0.0.1:0:80")
		m := regexp.MustCompile(`(127\.0\.0\.1:\d+) → port 80`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("launch %s: no forward in %q", env, out)
		}
		banner[env] = httpGet(t, "http://"+m[1]+"/banner.txt")
	}
	for env, want := range map[string]string{"dev": "Development", "prod": "Production"} {
		if !strings.HasPrefix(banner[env], want) {
			t.Errorf("%s banner = %q; want the estate's config/%s/banner.txt", env, banner[env], env)
		}
	}
	devBefore := showInstance(t, dir, "dev-1")
	seenBefore := map[string]time.Time{"dev": devBefore.LastSeenAt, "prod": showInstance(t, dir, "prod-1").LastSeenAt}

	// Check-in: what the agent's timer does a minute after boot, started
	// now. The agent reaches kiln serve on the host's 127.0.0.1 through
	// the instance's loopback egress.
	for _, env := range []string{"dev", "prod"} {
		var o bytes.Buffer
		code, err := plat.Exec(ctx, env+"-1", []string{"systemctl", "start", "kiln-agent.service"}, kiln.ExecIO{Stdout: &o, Stderr: &o})
		if err != nil || code != 0 {
			var j bytes.Buffer
			_, _ = plat.Exec(ctx, env+"-1", []string{"journalctl", "-u", "kiln-agent", "--no-pager", "-n", "30"}, kiln.ExecIO{Stdout: &j})
			t.Errorf("%s: kiln-agent check-in: exit %d, %v: %s\n%s", env, code, err, o.String(), j.String())
		}
	}
	for _, env := range []string{"dev", "prod"} {
		inst := showInstance(t, dir, env+"-1")
		if !inst.LastSeenAt.After(seenBefore[env]) {
			t.Errorf("%s-1 has not checked in (last seen %s, before the check-in %s)", env, inst.LastSeenAt, seenBefore[env])
		}
	}
	report := mustRun(t, dir, "fleet", "report", "--by-config")
	t.Logf("fleet report:\n%s", report)

	// A prod service of 2 instances with prod's configuration.
	front := freeLoopbackPort(t)
	mustRun(t, dir, "service", "create", "web", "--image", "appserver", "--env", "prod", "--replicas", "2",
		"--port", front, "--health", "http:/healthz", "--bake-time", "1s", "--max-surge", "1")
	mustRun(t, dir, "rollout", "web", "--to", version)
	before := serviceInstances(t, dir, "web")
	if len(before) != 2 {
		t.Fatalf("service web runs %v; want 2 instances", before)
	}

	// Prod's setting changes: a rollout of the same version replaces both
	// instances (new configuration digest) under load, none failing.
	pipe := filepath.Join(est, "pipeline.kiln.hcl")
	b, err := os.ReadFile(pipe)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(b), `settings = { LOG_LEVEL = "info" }`, `settings = { LOG_LEVEL = "warn" }`, 1)
	if changed == string(b) {
		t.Fatal("prod's LOG_LEVEL setting not found in the example estate's pipeline")
	}
	if err := os.WriteFile(pipe, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	l := startLoad(t, "http://"+front+"/banner.txt")
	out = mustRun(t, dir, "rollout", "web", "--to", version)
	ok, failed := l.stop()
	t.Logf("rollout:\n%s\nload: %d ok, %d failed", lastLines(out, 10), ok, len(failed))
	if len(failed) != 0 || ok == 0 {
		t.Errorf("load through the front end: %d ok, %d failed (first: %v); want none failed", ok, len(failed), failed)
	}
	after := serviceInstances(t, dir, "web")
	if len(after) != 2 {
		t.Fatalf("after the rollout web runs %v; want 2 instances", after)
	}
	for id, digest := range after {
		if _, kept := before[id]; kept {
			t.Errorf("instance %s was not replaced", id)
		}
		for _, old := range before {
			if digest == old {
				t.Errorf("instance %s has the old configuration digest %s", id, digest)
			}
		}
		var o bytes.Buffer
		if _, err := plat.Exec(ctx, id, []string{"cat", "/run/credentials/@system/kiln-settings"}, kiln.ExecIO{Stdout: &o}); err != nil || !strings.Contains(o.String(), `LOG_LEVEL="warn"`) {
			t.Errorf("%s settings = %q, %v; want LOG_LEVEL=\"warn\"", id, o.String(), err)
		}
	}
	devAfter := showInstance(t, dir, "dev-1")
	if devAfter.ConfigDigest != devBefore.ConfigDigest || !devAfter.LaunchedAt.Equal(devBefore.LaunchedAt) || devAfter.State != kiln.InstanceRunning {
		t.Errorf("dev-1 changed: before %+v, after %+v", devBefore, devAfter)
	}

	// The tokens never left their files in clear.
	leaks := map[string][]byte{"server log": []byte(logs.String())}
	leaks["audit log"] = []byte(mustRun(t, dir, "audit", "--output", "json"))
	dbs, _ := filepath.Glob(filepath.Join(dir, "*.db*"))
	if len(dbs) == 0 {
		t.Errorf("no SQLite database file in %s", dir)
	}
	for _, f := range dbs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		leaks[filepath.Base(f)] = b
	}
	ps, err := exec.Command("ps", "-eww", "-o", "args").Output()
	if err != nil {
		t.Fatal(err)
	}
	leaks["ps"] = ps
	for where, b := range leaks {
		for env, tok := range tokens {
			if bytes.Contains(b, []byte(tok)) {
				t.Errorf("%s's agent token in the %s", env, where)
			}
		}
	}
}

// exampleEstateOn copies examples/estate with basic-linux made from the
// test image (an origin, its own web server on port 80 disabled for
// nginx), so that building appserver bakes only its own steps.
func exampleEstateOn(t *testing.T, origin string) string {
	t.Helper()
	est := filepath.Join(t.TempDir(), "estate")
	if b, err := exec.Command("cp", "-a", filepath.Join("..", "..", "examples", "estate"), est).CombinedOutput(); err != nil {
		t.Fatalf("copy the example estate: %v: %s", err, b)
	}
	originSum := copyOrigin(t, origin, filepath.Join(est, "origin.tar"))
	def := fmt.Sprintf("image \"basic-linux\" {\n  origin {\n    source = \"origin.tar\"\n    sha256 = %q\n  }\n  shell {\n    inline = [\"systemctl disable kiln-httpd\"]\n  }\n  tests = [\"tests/basic-linux.yaml\"]\n}\n", originSum)
	for name, content := range map[string]string{
		"basic-linux.kiln.hcl":   def,
		"tests/basic-linux.yaml": "file:\n  /etc/kiln-release:\n    exists: true\n",
	} {
		if err := os.WriteFile(filepath.Join(est, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(est, "container-node.kiln.hcl")); err != nil {
		t.Fatal(err)
	}
	return est
}

// startServeAt runs kiln serve on addr and returns its log.
func startServeAt(t testing.TB, dir, addr string) *syncBuffer {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cli.Config{DataDir: dir}, logger, cli.ServeOptions{Listen: addr}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(logs.String(), "listening") {
			return logs
		}
	}
	t.Fatalf("server did not start: %s", logs.String())
	return nil
}

func latestVersion(t *testing.T, dir, image string) string {
	t.Helper()
	var vs []kiln.Version
	if err := json.Unmarshal([]byte(mustRun(t, dir, "version", "list", image, "--output", "json")), &vs); err != nil || len(vs) == 0 {
		t.Fatalf("version list %s: %v (%d versions)", image, err, len(vs))
	}
	best := vs[0]
	for _, v := range vs {
		if v.Number > best.Number {
			best = v
		}
	}
	return fmt.Sprintf("%s-%d", image, best.Number)
}

func showInstance(t *testing.T, dir, name string) kiln.Instance {
	t.Helper()
	var inst kiln.Instance
	if err := json.Unmarshal([]byte(mustRun(t, dir, "instance", "show", name, "--output", "json")), &inst); err != nil {
		t.Fatal(err)
	}
	return inst
}

// serviceInstances are the running instances of a service, by id, with
// their configuration digests.
func serviceInstances(t *testing.T, dir, service string) map[string]string {
	t.Helper()
	var list struct{ Instances []kiln.Instance }
	if err := json.Unmarshal([]byte(mustRun(t, dir, "instance", "list", "--output", "json", "--state", "running", "--limit", "0")), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, i := range list.Instances {
		if i.Labels["kiln.service"] == service {
			out[i.ID] = i.ConfigDigest
		}
	}
	return out
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

// lastLines is the end of a command's output, for the test log.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

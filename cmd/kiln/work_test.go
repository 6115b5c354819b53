package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/store"
)

// serveWork: without --work a machine does what it can; --work naming
// work on a machine without a platform stops the start, naming --work and
// what is missing; --work none starts anywhere.
func TestServeWorkResolves(t *testing.T) {
	noPlat := &graph{noPlatform: kiln.Errorf(kiln.EUNAVAILABLE, "systemd-nspawn is not installed")}
	withPlat := &graph{}
	for _, c := range []struct {
		g    *graph
		w    cli.ServeWork
		want string // the resolved --work, or the error's part
	}{
		{withPlat, cli.ServeWork{}, "pipelines,rollouts"},
		{noPlat, cli.ServeWork{}, "none"},
		{withPlat, cli.ServeWork{Given: true, Rollouts: true}, "rollouts"},
		{noPlat, cli.ServeWork{Given: true}, "none"},
		{noPlat, cli.ServeWork{Given: true, Pipelines: true}, "--work pipelines needs a platform on this machine, and it has none: systemd-nspawn is not installed"},
		{noPlat, cli.ServeWork{Given: true, Rollouts: true}, "--work rollouts needs a platform"},
	} {
		got, err := serveWork(c.w, c.g)
		switch {
		case err != nil:
			if !strings.Contains(err.Error(), c.want) || kiln.ErrorCode(err) != kiln.EINVALID {
				t.Errorf("%+v: %v, want %q", c.w, err, c.want)
			}
		case got.String() != c.want:
			t.Errorf("%+v: %s, want %s", c.w, got, c.want)
		}
	}
}

// startServeLogs starts kiln serve on dir with opts and returns its log.
func startServeLogs(t *testing.T, dir string, opts cli.ServeOptions) (*syncBuffer, func()) {
	t.Helper()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Listen = "127.0.0.1:0"
	go func() { done <- serve(ctx, cli.Config{DataDir: dir}, logger, opts) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("serve: %v", err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(logs.String(), "listening") {
			return logs, stop
		}
	}
	stop()
	t.Fatalf("server did not start: %s", logs.String())
	return nil, nil
}

// A server with --work rollouts (an instance host) claims no queued run
// and leaves a dead worker's run alone, and its log says so; the same
// machine without --work marks the dead worker's run interrupted, resumes
// it (audited) and claims the runs. The runs name an estate that does not
// exist, so a run claimed fails at once.
func TestServeWorkRollouts(t *testing.T) {
	ci.Root(t, "kiln serve's platform")
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		ci.SkipOrFail(t, "systemd-nspawn is not installed (apt-get install systemd-container)")
	}
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	stages := []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}}
	enqueue := func(image string) *kiln.Run {
		t.Helper()
		r, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: image, Estate: "/nonexistent-estate", Trigger: "manual", Stages: stages})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	find := func(id int64) *kiln.Run {
		t.Helper()
		r, err := db.FindRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A run held by a kiln of this host that died, and a queued one.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	dead := fmt.Sprintf("%s:%d", host, cmd.Process.Pid)
	held := enqueue("app")
	if c, err := db.ClaimRun(ctx, dead); err != nil || c == nil || c.ID != held.ID {
		t.Fatalf("claim for a dead worker: %+v %v", c, err)
	}
	queued := enqueue("web")

	logs, stop := startServeLogs(t, dir, cli.ServeOptions{Work: cli.ServeWork{Given: true, Rollouts: true}})
	time.Sleep(5 * time.Second) // a worker claims at once, then every 2 s
	stop()
	for _, want := range []string{"claims no pipeline runs and runs no triggers or schedules", "runs rollouts, services' front ends", "work=rollouts", "from=--work"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log of kiln serve --work rollouts does not say %q:\n%s", want, logs)
		}
	}
	if r := find(queued.ID); r.Status != kiln.RunQueued {
		t.Fatalf("kiln serve --work rollouts took run %d: %s (%s)", r.ID, r.Status, r.Reason)
	}
	if r := find(held.ID); r.Status != kiln.RunRunning {
		t.Fatalf("kiln serve --work rollouts touched the dead worker's run %d: %s (%s)", r.ID, r.Status, r.Reason)
	}

	// Without --work: this machine can, so it does both.
	logs, stop = startServeLogs(t, dir, cli.ServeOptions{})
	defer stop()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a, b := find(held.ID), find(queued.ID)
		if a.Status == kiln.RunFailed && b.Status == kiln.RunFailed {
			if a.Resumes != 1 || !strings.Contains(a.Trigger, "resumed by worker") {
				t.Errorf("the dead worker's run was not resumed: resumes=%d trigger %q", a.Resumes, a.Trigger)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("kiln serve did not carry the runs: %s (%s), %s (%s)\n%s", a.Status, a.Reason, b.Status, b.Reason, logs)
		}
	}
	entries, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(entries, func(a, b *kiln.AuditEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	var acts []string
	for _, e := range entries {
		if e.Target == fmt.Sprintf("run %d", held.ID) {
			acts = append(acts, e.Action)
		}
	}
	if got := strings.Join(acts, " "); !strings.Contains(got, "run.start run.interrupted run.resume run.start") {
		t.Errorf("audit of the dead worker's run: %s; want it interrupted, resumed once and started again", got)
	}
	if out := mustRun(t, dir, "run", "show", fmt.Sprint(held.ID)); !strings.Contains(out, "Resumes: 1 (automatic, after interruptions)") {
		t.Errorf("kiln run show of the resumed run does not count the resume:\n%s", out)
	}
	for _, want := range []string{"claims queued pipeline runs, resumes interrupted ones", "work=pipelines,rollouts", "pipeline run resumed after an interruption"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log of kiln serve does not say %q:\n%s", want, logs)
		}
	}
}

// A bad --work stops `kiln serve` before it opens anything, naming the flag.
func TestServeWorkFlag(t *testing.T) {
	_, errs, code := run(t, t.TempDir(), "serve", "--work", "builds")
	if code != 1 || !strings.Contains(errs, "--work") || !strings.Contains(errs, `unknown work "builds"`) {
		t.Fatalf("kiln serve --work builds: exit %d, %q", code, errs)
	}
}

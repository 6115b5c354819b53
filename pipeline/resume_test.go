package pipeline_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/store"
)

// openBackend opens an empty store: a SQLite file, or a PostgreSQL schema
// of its own (dropped at cleanup).
func openBackend(t *testing.T, kind string) *store.DB {
	t.Helper()
	u := "sqlite:" + filepath.Join(t.TempDir(), "kiln.db")
	if kind == "postgres" {
		base := ci.Postgres(t)
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "kiln_pipeline_" + hex.EncodeToString(b[:])
		admin, err := sql.Open("pgx", base)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
			_ = admin.Close()
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); _ = admin.Close() })
		pu, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		q := pu.Query()
		q.Set("search_path", schema)
		pu.RawQuery = q.Encode()
		u = pu.String()
	}
	db, err := store.Open(context.Background(), u, "", slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatalf("open %s: %v", kind, err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// stopped has runner claim a queued run and stops it (its ctx cancelled)
// while it reads the estate, as Ctrl-C or kiln serve's shutdown would.
func stopped(t *testing.T, runner *pipeline.Runner) *kiln.Run {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	runner.LoadEstate = func(string, map[string]string) (*definition.Estate, error) {
		close(started)
		<-release
		return nil, errors.New("stopped while reading the estate")
	}
	run, err := runner.Store.ClaimRun(ctx, runner.Worker)
	if err != nil || run == nil {
		t.Fatalf("claim: %v %v", run, err)
	}
	done := make(chan error, 1)
	go func() { done <- runner.Execute(ctx, run) }()
	<-started
	cancel()
	close(release)
	if err := <-done; err == nil {
		t.Fatal("a stopped run reported no error")
	}
	got, err := runner.Store.FindRun(context.Background(), run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != kiln.RunInterrupted {
		t.Fatalf("stopped run: %s (%s)", got.Status, got.Reason)
	}
	return got
}

// TestRecoverResumes is the resume decision of kiln serve's worker
// (Runner.Resume) on both backends: a run whose worker died or went
// silent is queued again from its interrupted stage, once; a run kiln
// serve's worker stopped is resumed by the next worker; a run a user
// stopped in a terminal (`kiln run`, Ctrl-C) is not; a runner without
// Resume marks dead workers' runs but leaves resuming to the workers.
func TestRecoverResumes(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			db := openBackend(t, kind)
			ctx := context.Background()
			stages := []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}, {Name: "test", Kind: kiln.StageTest}}
			enqueue := func(image string) *kiln.Run {
				t.Helper()
				r, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: image, Estate: "/e", Trigger: "manual", Stages: stages})
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
			serveWorker := &pipeline.Runner{Store: db, Registry: db, Resume: true}
			cliRunner := &pipeline.Runner{Store: db, Registry: db}

			// A worker of this host that died (its process is gone) during
			// the test stage: the CLI's Recover marks it, the serve worker's
			// queues it again from the test stage.
			cmd := exec.Command("true")
			if err := cmd.Run(); err != nil {
				t.Fatal(err)
			}
			host, _ := os.Hostname()
			dead := fmt.Sprintf("%s:%d", host, cmd.Process.Pid)
			web := enqueue("web")
			c, err := db.ClaimRun(ctx, dead)
			if err != nil || c == nil {
				t.Fatal(c, err)
			}
			c.Stages[0].Status, c.Stages[1].Status = kiln.StagePassed, kiln.StageRunning
			for i := range c.Stages {
				if err := db.UpdateStage(ctx, web.ID, dead, i, c.Stages[i], nil); err != nil {
					t.Fatal(err)
				}
			}
			if got, err := cliRunner.Recover(ctx); err != nil || len(got) != 1 {
				t.Fatalf("recover without Resume: %v %v", got, err)
			}
			if r := find(web.ID); r.Status != kiln.RunInterrupted || !r.ResumePending {
				t.Fatalf("after the CLI's recover: %s pending=%v; want interrupted, resume pending", r.Status, r.ResumePending)
			}
			if _, err := serveWorker.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			r := find(web.ID)
			if r.Status != kiln.RunQueued || r.Resumes != 1 || r.ResumePending || r.Stages[0].Status != kiln.StagePassed || r.Stages[1].Status != kiln.StagePending ||
				!strings.Contains(r.Trigger, "resumed by worker "+serveWorker.Worker) {
				t.Fatalf("after the worker's recover: %s resumes=%d %+v trigger %q; want queued from the test stage", r.Status, r.Resumes, r.Stages, r.Trigger)
			}
			// Once: a second recover finds nothing more to resume.
			if _, err := serveWorker.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			if r := find(web.ID); r.Status != kiln.RunQueued || r.Resumes != 1 {
				t.Fatalf("after a second recover: %s resumes=%d", r.Status, r.Resumes)
			}

			// A worker on another host whose heartbeat went stale.
			c, err = db.ClaimRun(ctx, "elsewhere:7")
			if err != nil || c == nil || c.ID != web.ID {
				t.Fatal(c, err)
			}
			quick := &pipeline.Runner{Store: db, Registry: db, Resume: true, Lease: time.Nanosecond}
			time.Sleep(5 * time.Millisecond)
			if got, err := quick.Recover(ctx); err != nil || len(got) != 1 {
				t.Fatalf("recover of a stale run: %v %v", got, err)
			}
			if r := find(web.ID); r.Status != kiln.RunQueued || r.Resumes != 2 {
				t.Fatalf("stale run: %s resumes=%d; want queued again", r.Status, r.Resumes)
			}

			// kiln serve stopped (its worker's ctx ended): resumed by the
			// next worker's recover.
			serveWorker.Worker = "serve:1"
			s := stopped(t, serveWorker)
			if !s.ResumePending {
				t.Fatalf("a run kiln serve stopped has no pending resume: %+v", s)
			}
			other := &pipeline.Runner{Store: db, Registry: db, Resume: true, Worker: "serve:2"}
			if _, err := other.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			if r := find(s.ID); r.Status != kiln.RunQueued || r.Resumes != 3 {
				t.Fatalf("after kiln serve stopped: %s resumes=%d; want queued", r.Status, r.Resumes)
			}

			// The fourth interruption in a row is left for a person.
			if _, err := db.ClaimRun(ctx, "elsewhere:8"); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			if _, err := quick.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			if r := find(web.ID); r.Status != kiln.RunInterrupted || r.ResumePending || !strings.Contains(r.Reason, "kiln run retry") {
				t.Fatalf("past the limit: %s pending=%v (%s); want interrupted, for `kiln run retry`", r.Status, r.ResumePending, r.Reason)
			}

			// A user's Ctrl-C of `kiln run`: interrupted, not resumed.
			app := enqueue("app")
			cliRunner.Worker = "terminal:1"
			if s := stopped(t, cliRunner); s.ID != app.ID || s.ResumePending {
				t.Fatalf("a run the user stopped: %+v", s)
			}
			if _, err := other.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			if r := find(app.ID); r.Status != kiln.RunInterrupted || r.Resumes != 0 {
				t.Fatalf("a run the user stopped after the worker's recover: %s resumes=%d; want interrupted", r.Status, r.Resumes)
			}
		})
	}
}

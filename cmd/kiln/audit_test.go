package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/store"
)

// The audit log against a database writer: kiln serve's checkpoint loop
// signs the head into the database and a file outside it; someone who
// drops the triggers, deletes an entry and re-hashes the rest gets a
// chain that is intact on its own, and `kiln audit verify` still reports
// it through the signed checkpoints, the file and the head the user kept.
func TestAuditVerifyDetectsDeleteAndRehash(t *testing.T) {
	dir := t.TempDir()
	for _, img := range []string{"web", "db", "cache"} {
		mustRun(t, dir, "image", "create", img)
	}
	// kiln serve's loop, on a short interval.
	cpFile := filepath.Join(t.TempDir(), "checkpoints.jsonl")
	ctx := context.Background()
	db, signer, err := openDB(ctx, cli.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stop := startAuditCheckpoints(ctx, db, signer, 20*time.Millisecond, cpFile, nil)
	waitFor(t, func() bool { cps, _ := db.ListAuditCheckpoints(ctx); return len(cps) == 1 })
	time.Sleep(100 * time.Millisecond) // more intervals: the head did not move, nothing more is signed
	if cps, _ := db.ListAuditCheckpoints(ctx); len(cps) != 1 {
		t.Fatalf("the loop signed %d checkpoints of an unchanged head", len(cps))
	}
	if err := db.CreateImage(kiln.WithActor(ctx, "test"), &kiln.Image{Name: "queue"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { cps, _ := db.ListAuditCheckpoints(ctx); return len(cps) == 2 })
	stop()
	db.Close()
	lines, _ := os.ReadFile(cpFile)
	if n := strings.Count(string(lines), "\n"); n != 2 {
		t.Fatalf("checkpoint file has %d lines, want 2:\n%s", n, lines)
	}

	head := strings.TrimSpace(mustRun(t, dir, "audit", "head"))
	if !strings.HasPrefix(head, "4:") || len(head) != 2+64 {
		t.Fatalf("audit head = %q, want 4:HASH", head)
	}
	out := mustRun(t, dir, "audit", "verify", "--expect", head, "--checkpoints", cpFile)
	if !strings.Contains(out, "audit log intact: 4 entries") {
		t.Fatalf("verify of the untouched log: %s", out)
	}
	var r kiln.AuditReport
	if err := json.Unmarshal([]byte(mustRun(t, dir, "-o", "json", "audit", "verify", "--expect", head)), &r); err != nil || r.Checkpoints != 2 || r.Anchors != 1 || len(r.Problems) != 0 {
		t.Fatalf("JSON report %+v, %v", r, err)
	}
	// `kiln audit checkpoint` with nothing new signs nothing; after a change it does.
	if _, errs, code := run(t, dir, "audit", "checkpoint"); code != 0 || !strings.Contains(errs, "already checkpointed") {
		t.Fatalf("checkpoint of a checkpointed head: %d %s", code, errs)
	}
	mustRun(t, dir, "image", "create", "mail")
	if out := mustRun(t, dir, "audit", "checkpoint", "--file", cpFile); !strings.HasPrefix(out, "signed checkpoint 5:") {
		t.Fatalf("audit checkpoint: %s", out)
	}

	// The attacker with write access to the database file, checkpoints included.
	testenv.RehashAuditWithout(t, filepath.Join(dir, "kiln.db"), 3, true)
	// The chain alone now looks intact…
	if c, err := func() (*kiln.AuditCheck, error) {
		db, err := store.Open(ctx, "", dir, nil, nil)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		return db.VerifyAudit(ctx)
	}(); err != nil || len(c.Problems) != 0 {
		t.Fatalf("precondition: the re-hashed chain should look intact: %+v %v", c, err)
	}
	// …but not against the file of signed checkpoints, nor the kept head.
	for _, args := range [][]string{
		{"audit", "verify", "--checkpoints", cpFile},
		{"audit", "verify", "--expect", head},
	} {
		out, errs, code := run(t, dir, args...)
		if code == 0 || !strings.Contains(errs, "tampered") || !strings.Contains(out, "problem:") {
			t.Errorf("kiln %s after delete-and-rehash: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
	}
	if out, _, _ := run(t, dir, "audit", "verify", "--checkpoints", cpFile); !strings.Contains(out, "not in the database") {
		t.Errorf("the deleted checkpoints are not reported:\n%s", out)
	}
	if _, errs, code := run(t, dir, "audit", "verify", "--expect", "4"); code == 0 || !strings.Contains(errs, "SEQ:HASH") {
		t.Errorf("bad --expect: %d %s", code, errs)
	}
}

// Without the file, the checkpoints kept in the database catch a writer
// who leaves them alone.
func TestAuditVerifyDatabaseCheckpoints(t *testing.T) {
	dir := t.TempDir()
	for _, img := range []string{"web", "db", "cache", "queue"} {
		mustRun(t, dir, "image", "create", img)
	}
	mustRun(t, dir, "audit", "checkpoint")
	testenv.RehashAuditWithout(t, filepath.Join(dir, "kiln.db"), 2, false)
	out, errs, code := run(t, dir, "audit", "verify")
	if code == 0 || !strings.Contains(out, "entry 4 is missing") {
		t.Fatalf("delete-and-rehash not detected by the database's checkpoint: exit %d\n%s%s", code, out, errs)
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatal("timed out")
}

// A checkpoint file kiln serve cannot append to stops the start.
func TestServeRefusesUnwritableCheckpointFile(t *testing.T) {
	err := serve(context.Background(), cli.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler),
		cli.ServeOptions{Listen: "127.0.0.1:0", AuditCheckpointEvery: time.Minute, AuditCheckpointFile: filepath.Join(t.TempDir(), "no", "such", "dir", "cp.jsonl")})
	if err == nil || !strings.Contains(err.Error(), "--audit-checkpoint-file") {
		t.Fatalf("serve with an unwritable checkpoint file: %v", err)
	}
}

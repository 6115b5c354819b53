package sign_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// Someone who can write to the database drops the triggers, deletes an
// audit entry and re-hashes the rest: the chain alone still verifies, but
// the signed checkpoint (and an anchor the user wrote down) no longer
// match, so the tampering is reported.
func TestAuditDeleteAndRehashIsDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "kiln.db")
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := sign.NewSigner(key)

	db, err := store.Open(ctx, "sqlite:"+dbPath, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if err := db.AppendAudit(ctx, &kiln.AuditEntry{Action: "test.event", Target: fmt.Sprint("t", i)}); err != nil {
			t.Fatal(err)
		}
	}
	head, err := db.AuditHead(ctx)
	if err != nil || head.Seq != 6 {
		t.Fatalf("head = %+v, %v", head, err)
	}
	cp, err := signer.SignAuditCheckpoint(head, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AddAuditCheckpoint(ctx, cp); err != nil {
		t.Fatal(err)
	}
	r, err := sign.VerifyAuditLog(ctx, db, []kiln.AuditAnchor{head}, time.Hour, time.Now(), signer.Public())
	if err != nil || len(r.Problems) != 0 || r.Checkpoints != 1 {
		t.Fatalf("untouched log: %+v, %v", r, err)
	}
	db.Close()

	// The attacker: no triggers, entry 3 gone, the rest renumbered and
	// re-hashed so every link is consistent again.
	testenv.RehashAuditWithout(t, dbPath, 3, false)

	db, err = store.Open(ctx, "sqlite:"+dbPath, dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if c, err := db.VerifyAudit(ctx); err != nil || len(c.Problems) != 0 {
		t.Fatalf("precondition: the re-hashed chain alone should look intact: %+v, %v", c, err)
	}
	r, err = sign.VerifyAuditLog(ctx, db, nil, time.Hour, time.Now(), signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) == 0 || !strings.Contains(strings.Join(r.Problems, "\n"), "entry 6 is missing") {
		t.Fatalf("delete-and-rehash not detected by the signed checkpoint: %+v", r)
	}
	r, err = sign.VerifyAuditLog(ctx, db, []kiln.AuditAnchor{{Seq: 5, Hash: "0000"}}, 0, time.Now(), signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(r.Problems, "\n"), "entry 5 has hash") {
		t.Fatalf("a wrong --expect anchor not reported: %+v", r)
	}
}

// A checkpoint row edited after signing, or signed by another key, is
// reported and not used as an anchor.
func TestAuditCheckpointSignature(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	s := sign.NewSigner(key)
	cp, err := s.SignAuditCheckpoint(kiln.AuditAnchor{Seq: 7, Hash: "abc"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyAuditCheckpoint(cp, s.Public()); err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyAuditCheckpoint(cp, sign.NewSigner(other).Public()); err == nil {
		t.Error("a checkpoint verified with another key")
	}
	edited := *cp
	edited.Hash = "def"
	if err := sign.VerifyAuditCheckpoint(&edited, s.Public()); err == nil || !strings.Contains(err.Error(), "row was changed") {
		t.Errorf("edited checkpoint: %v", err)
	}
}

package store

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// Checkpoints are kept only for the entry and hash the log holds, are
// listed oldest first, and refuse changes through SQL like the log.
func TestAuditCheckpoints(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if h := must[kiln.AuditAnchor](t)(e.AuditHead(ctx)); h.Seq != 0 {
			t.Fatalf("empty log's head: %+v", h)
		}
		for i := range 3 {
			must[any](t)(nil, e.AppendAudit(ctx, &kiln.AuditEntry{Action: "test.event", Target: fmt.Sprint("t", i)}))
		}
		head := must[kiln.AuditAnchor](t)(e.AuditHead(ctx))
		if head.Seq != 3 || head.Hash == "" {
			t.Fatalf("head: %+v", head)
		}
		env := []byte(`{"payloadType":"x","payload":"","signatures":[]}`)
		err := e.AddAuditCheckpoint(ctx, &kiln.AuditCheckpoint{AuditAnchor: kiln.AuditAnchor{Seq: 3, Hash: "bogus"}, Time: time.Now(), KeyID: "k", Envelope: env})
		if kiln.ErrorCode(err) != kiln.ECONFLICT {
			t.Fatalf("checkpoint of another hash: %v, want conflict", err)
		}
		cp := &kiln.AuditCheckpoint{AuditAnchor: head, Time: time.Now(), KeyID: "k", Envelope: env}
		must[any](t)(nil, e.AddAuditCheckpoint(ctx, cp))
		must[any](t)(nil, e.AddAuditCheckpoint(ctx, cp)) // the same again: no-op
		l := must[[]*kiln.AuditCheckpoint](t)(e.ListAuditCheckpoints(ctx))
		if len(l) != 1 || l[0].Seq != 3 || l[0].Hash != head.Hash || string(l[0].Envelope) != string(env) {
			t.Fatalf("listed: %+v", l)
		}
		for _, q := range []string{`UPDATE audit_checkpoints SET head = 'x'`, `DELETE FROM audit_checkpoints`} {
			if _, err := e.raw.Exec(q); err == nil || !strings.Contains(err.Error(), "kiln immutable") {
				t.Fatalf("%s: %v, want the trigger's refusal", q, err)
			}
		}
		c := must[*kiln.AuditCheck](t)(e.VerifyAuditAgainst(ctx, []kiln.AuditAnchor{head, {Seq: 9, Hash: "h"}}))
		if len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "entry 9 is missing") {
			t.Fatalf("anchor past the end: %q", c.Problems)
		}
	})
}

// kiln serve warns when its role could rewrite the audit log: on
// PostgreSQL the role that created the tables owns them.
func TestAuditWriteRisks(t *testing.T) {
	ctx := context.Background()
	lite, err := Open(ctx, "", t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	if r, err := lite.AuditWriteRisks(ctx); err != nil || r != nil {
		t.Fatalf("SQLite: %v, %v", r, err)
	}
	u, _ := postgresSchema(t)
	pg, err := Open(ctx, u, t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	r, err := pg.AuditWriteRisks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	all := strings.Join(r, "\n")
	if len(r) != 2 || !strings.Contains(all, "can rewrite audit_log: owns it") || !strings.Contains(all, "audit_checkpoints") || !strings.Contains(all, "DELETE") {
		t.Fatalf("the owning role's risks: %q", r)
	}
}

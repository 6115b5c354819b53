package store

import (
	"context"
	"testing"

	"github.com/kiln-project/kiln"
)

// TestPauses: a pause is recorded with its actor and reason (audited),
// replaced by a second pause, listed, and gone after resume; resuming what
// is not paused is not found.
func TestPauses(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:ops")
		if err := e.Pause(ctx, &kiln.Pause{Kind: kiln.PauseEnvironment, Name: "prod", Reason: "x"}); kiln.ErrorCode(err) != kiln.EINVALID {
			t.Fatalf("pause without a reason: %v", err)
		}
		if err := e.Pause(ctx, &kiln.Pause{Kind: kiln.PauseEnvironment, Name: "prod", Reason: "CHG-1: freeze"}); err != nil {
			t.Fatal(err)
		}
		if err := e.Pause(ctx, &kiln.Pause{Kind: kiln.PauseEnvironment, Name: "prod", Reason: "CHG-2: longer freeze"}); err != nil {
			t.Fatal(err)
		}
		if err := e.Pause(ctx, &kiln.Pause{Kind: kiln.PauseService, Name: "web", Reason: "INC-9: investigating"}); err != nil {
			t.Fatal(err)
		}
		p, err := e.FindPause(ctx, kiln.PauseEnvironment, "prod")
		if err != nil || p.Reason != "CHG-2: longer freeze" || p.Actor != "local:ops" || p.At.IsZero() {
			t.Fatalf("prod pause: %+v %v", p, err)
		}
		ps, err := e.ListPauses(ctx)
		if err != nil || len(ps) != 2 || ps[0].Kind != kiln.PauseEnvironment || ps[1].Name != "web" {
			t.Fatalf("pauses: %+v %v", ps, err)
		}
		if err := e.Resume(ctx, kiln.PauseEnvironment, "prod"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.FindPause(ctx, kiln.PauseEnvironment, "prod"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Errorf("after resume: %v", err)
		}
		if err := e.Resume(ctx, kiln.PauseEnvironment, "prod"); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Errorf("second resume: %v", err)
		}
		es, err := e.ListAudit(ctx, kiln.AuditFilter{Target: "environment prod"})
		if err != nil || len(es) != 3 {
			t.Fatalf("audit: %d %v", len(es), err)
		}
	})
}

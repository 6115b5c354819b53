package store

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/kiln-project/kiln"
)

// Every mutating registry call leaves one audit entry, written in its own
// transaction, with the actor and source of its context; a failed call
// leaves none.
func TestAuditMutations(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithSource(kiln.WithActor(context.Background(), "token:ci"), "192.0.2.7")
		if err := e.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
			t.Fatal(err)
		}
		must[*kiln.Version](t)(e.SetStatus(ctx, ref("appserver", 1), kiln.StatusTested, "smoke passed"))
		must[*kiln.Version](t)(e.UpdateTags(ctx, ref("appserver", 1), kiln.TagUpdate{Set: map[string]string{"team": "web"}}))
		if err := e.AddAttachment(ctx, ref("appserver", 1), &kiln.Attachment{Name: "build.log", Data: []byte("ok")}); err != nil {
			t.Fatal(err)
		}
		// Failures roll back their entry with the change.
		wantCode(t, e.CreateImage(ctx, &kiln.Image{Name: "appserver"}), kiln.ECONFLICT)
		wantCode(t, errOf(e.SetStatus(ctx, ref("appserver", 1), kiln.StatusCandidate, "")), kiln.ECONFLICT)
		// A local user has no source address.
		local := kiln.WithActor(context.Background(), "local:alice")
		must[*kiln.Version](t)(e.SetStatus(local, ref("appserver", 1), kiln.StatusReady, ""))

		es := must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), kiln.AuditFilter{}))
		var got []string
		for _, a := range es {
			got = append(got, fmt.Sprintf("%d %s %s %s %s %s %s", a.Seq, a.Actor, a.Source, a.Action, a.Target, a.Result, a.Detail))
		}
		want := []string{
			"1 token:ci 192.0.2.7 image.create appserver ok ",
			"2 token:ci 192.0.2.7 version.create appserver-1 ok fresh",
			"3 token:ci 192.0.2.7 version.status appserver-1 ok candidate → tested: smoke passed",
			"4 token:ci 192.0.2.7 version.tags appserver-1 ok set team",
			"5 token:ci 192.0.2.7 version.attach appserver-1 ok build.log",
			"6 local:alice local version.status appserver-1 ok tested → ready",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for i, a := range es {
			if a.Time.IsZero() || a.Hash != AuditHash(a) || (i > 0 && a.PrevHash != es[i-1].Hash) || (i == 0 && a.PrevHash != "") {
				t.Fatalf("entry %d is not chained: %+v", a.Seq, a)
			}
		}

		// Filters.
		for _, c := range []struct {
			f    kiln.AuditFilter
			want int
		}{
			{kiln.AuditFilter{Actor: "local:alice"}, 1},
			{kiln.AuditFilter{Target: "appserver-1"}, 5},
			{kiln.AuditFilter{Since: es[3].Time}, 3},
			{kiln.AuditFilter{Limit: 2}, 2},
			{kiln.AuditFilter{Actor: "token:ci", Target: "appserver"}, 1},
		} {
			if n := len(must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), c.f))); n != c.want {
				t.Errorf("filter %+v: %d entries, want %d", c.f, n, c.want)
			}
		}
		if l := must[[]*kiln.AuditEntry](t)(e.ListAudit(context.Background(), kiln.AuditFilter{Limit: 2})); l[1].Seq != 6 {
			t.Errorf("limit keeps the newest: got seq %d last", l[1].Seq)
		}
	})
}

// The log refuses changes through SQL; with the triggers dropped, verify
// finds an edited entry and a deleted one.
func TestAuditTamper(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := kiln.WithActor(context.Background(), "local:alice")
		for i := range 5 {
			if err := e.AppendAudit(ctx, &kiln.AuditEntry{Action: "test.event", Target: fmt.Sprint("t", i)}); err != nil {
				t.Fatal(err)
			}
		}
		c := must[*kiln.AuditCheck](t)(e.VerifyAudit(ctx))
		if c.Entries != 5 || len(c.Problems) != 0 || c.Head == "" {
			t.Fatalf("intact log: %+v", c)
		}
		for _, q := range []string{`UPDATE audit_log SET actor = 'mallory' WHERE seq = 2`, `DELETE FROM audit_log WHERE seq = 4`} {
			if _, err := e.raw.Exec(q); err == nil || !strings.Contains(err.Error(), "kiln immutable") {
				t.Fatalf("%s: %v, want the trigger's refusal", q, err)
			}
		}
		if e.kind == "sqlite" {
			_, err := e.raw.Exec(`DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete`)
			must[any](t)(nil, err)
		} else {
			_, err := e.raw.Exec(`DROP TRIGGER audit_log_immutable ON audit_log`)
			must[any](t)(nil, err)
		}
		if _, err := e.raw.Exec(`UPDATE audit_log SET actor = 'mallory' WHERE seq = 2`); err != nil {
			t.Fatal(err)
		}
		c = must[*kiln.AuditCheck](t)(e.VerifyAudit(ctx))
		if len(c.Problems) != 1 || !strings.Contains(c.Problems[0], "entry 2 ") || !strings.Contains(c.Problems[0], "edited") {
			t.Fatalf("after edit: %q", c.Problems)
		}
		if _, err := e.raw.Exec(`DELETE FROM audit_log WHERE seq = 4`); err != nil {
			t.Fatal(err)
		}
		c = must[*kiln.AuditCheck](t)(e.VerifyAudit(ctx))
		if len(c.Problems) != 2 || !strings.Contains(c.Problems[1], "entry 4 is missing") {
			t.Fatalf("after delete: %q", c.Problems)
		}
	})
}

// Appends from several handles (processes sharing a database) at once keep
// one linear chain: seq without gaps, each entry linked to the one before.
func TestAuditConcurrentAppends(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		const handles, each = 4, 15
		var wg sync.WaitGroup
		errs := make(chan error, handles*each)
		for h := range handles {
			db := e.reopen(t)
			wg.Go(func() {
				ctx := kiln.WithActor(context.Background(), fmt.Sprint("worker-", h))
				for i := range each {
					if err := db.AppendAudit(ctx, &kiln.AuditEntry{Action: "test.event", Target: fmt.Sprint(i)}); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		c := must[*kiln.AuditCheck](t)(e.VerifyAudit(context.Background()))
		if c.Entries != handles*each || len(c.Problems) != 0 {
			t.Fatalf("after concurrent appends: %d entries, problems %q", c.Entries, c.Problems)
		}
	})
}

package pipeline_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/store"
)

func openDB(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestSignVerify(t *testing.T) {
	body := []byte(`{"event":"ready"}`)
	sig := pipeline.Sign("secret-secret-secret", body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Fatalf("signature %q", sig)
	}
	if !pipeline.Verify("secret-secret-secret", body, sig) || pipeline.Verify("other-secret-secret!", body, sig) ||
		pipeline.Verify("secret-secret-secret", []byte(`{"event":"promoted"}`), sig) {
		t.Fatal("verify accepts what it should not, or refuses the good signature")
	}
}

// TestSenderRetriesWithBackoff has a receiver fail twice: the delivery is
// retried at growing intervals and the log keeps each attempt.
func TestSenderRetriesWithBackoff(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(pipeline.HeaderEvent) != "ready" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("headers: %v", r.Header)
		}
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := db.AddWebhook(ctx, &kiln.Webhook{URL: srv.URL, Secret: "0123456789abcdef", Events: []kiln.WebhookEvent{kiln.EventReady}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.EnqueueEvent(ctx, kiln.EventReady, []byte(`{"name":"web-1"}`)); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := &pipeline.Sender{Store: db, Backoff: time.Millisecond, Clock: func() time.Time { return now }}
	for i := range 2 {
		if n, err := s.SendDue(ctx); err != nil || n != 0 {
			t.Fatalf("attempt %d: delivered %d, %v", i+1, n, err)
		}
		ds, _ := db.Deliveries(ctx, 0, 0)
		want := now.Add(time.Millisecond << i)
		if ds[0].Attempts != i+1 || ds[0].ResponseStatus != 503 || !ds[0].NextAttemptAt.Equal(want.UTC().Truncate(time.Microsecond)) {
			t.Fatalf("after attempt %d: %+v (want next %s)", i+1, ds[0], want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, err := s.SendDue(ctx); err != nil || n != 1 {
		t.Fatalf("third attempt: delivered %d, %v", n, err)
	}
	ds, _ := db.Deliveries(ctx, 0, 0)
	if ds[0].Status != kiln.DeliveryDelivered || ds[0].Attempts != 3 {
		t.Fatalf("log: %+v", ds[0])
	}

	// A receiver that never answers well: given up after MaxAttempts.
	if _, err := db.EnqueueEvent(ctx, kiln.EventReady, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	calls.Store(-100)
	s = &pipeline.Sender{Store: db, Backoff: time.Microsecond, MaxAttempts: 2}
	for range 2 {
		_, _ = s.SendDue(ctx)
		time.Sleep(5 * time.Millisecond)
	}
	ds, _ = db.Deliveries(ctx, 0, 1)
	if ds[0].Status != kiln.DeliveryFailed || ds[0].Attempts != 2 || !strings.Contains(ds[0].LastError, "503") {
		t.Fatalf("given-up delivery: %+v", ds[0])
	}
}

// A webhook URL with a credential in it (user:password, a secret path and
// query, as chat and CI hooks have) never reaches the log, the audit log,
// the delivery log or an error: only its scheme and host do.
func TestWebhookURLCredentialsDoNotLeak(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	const secret = "s3cr3tLEAK"
	withCreds := strings.Replace(srv.URL, "http://", "http://hookuser:pw-"+secret+"@", 1) + "/services/T0/" + secret + "?token=q-" + secret
	unreachable := "http://u:pw-" + secret + "@127.0.0.1:1/hooks/" + secret
	for _, u := range []string{withCreds, unreachable} {
		if err := db.AddWebhook(ctx, &kiln.Webhook{URL: u, Secret: "0123456789abcdef", Events: []kiln.WebhookEvent{kiln.EventReady}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&kiln.Webhook{URL: "ftp://u:pw-" + secret + "@x/" + secret, Secret: "0123456789abcdef", Events: []kiln.WebhookEvent{kiln.EventReady}}).Validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("a bad URL's error: %v", err)
	}
	if _, err := db.EnqueueEvent(ctx, kiln.EventReady, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	s := &pipeline.Sender{Store: db, Backoff: time.Millisecond, MaxAttempts: 1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if _, err := s.SendDue(ctx); err != nil {
		t.Fatal(err)
	}
	var seen []string
	seen = append(seen, logs.String())
	es, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		seen = append(seen, e.Action+" "+e.Target+" "+e.Detail)
	}
	ds, _ := db.Deliveries(ctx, 0, 0)
	ws, _ := db.ListWebhooks(ctx)
	for _, v := range []any{ds, ws} {
		b, _ := json.Marshal(v)
		seen = append(seen, string(b))
	}
	if len(ds) != 2 || ds[0].LastError == "" || ds[1].LastError == "" {
		t.Fatalf("deliveries: %+v", ds)
	}
	for _, s := range seen {
		if strings.Contains(s, secret) {
			t.Errorf("the webhook URL's secret leaked:\n%s", s)
		}
	}
	if !strings.Contains(strings.Join(seen, "\n"), "127.0.0.1:1") {
		t.Errorf("the endpoint should still be named: %q", seen)
	}
}

package pipeline

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// Webhook request headers. The signature is "sha256=" and the hex
// HMAC-SHA256 of the body with the webhook's secret, as GitHub does it.
const (
	HeaderEvent     = "X-Kiln-Event"
	HeaderDelivery  = "X-Kiln-Delivery"
	HeaderSignature = "X-Kiln-Signature-256"
)

// Sign returns the X-Kiln-Signature-256 value of body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header against body in constant time; what a
// receiver runs.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}

// Sender delivers queued webhook events: POST with the signed JSON body,
// retried with exponential backoff (Backoff, 2×Backoff, 4×… up to an hour)
// until MaxAttempts, each attempt kept in the delivery log.
type Sender struct {
	Store  kiln.WebhookStore
	HTTP   *http.Client
	Logger *slog.Logger
	// MaxAttempts before a delivery is given up (default 8); Backoff is
	// the first wait (default 5 s).
	MaxAttempts int
	Backoff     time.Duration
	Clock       kiln.Clock
}

func (s *Sender) defaults() {
	if s.HTTP == nil {
		s.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = 8
	}
	if s.Backoff <= 0 {
		s.Backoff = 5 * time.Second
	}
	if s.Clock == nil {
		s.Clock = time.Now
	}
}

// SendDue sends the deliveries due now and returns how many were delivered.
func (s *Sender) SendDue(ctx context.Context) (int, error) {
	s.defaults()
	ds, err := s.Store.ClaimDeliveries(ctx, 20, time.Minute)
	if err != nil {
		return 0, err
	}
	ok := 0
	for _, d := range ds {
		status, err := s.post(ctx, d)
		if err == nil {
			ok++
			if rerr := s.Store.RecordAttempt(ctx, d.ID, true, status, "", time.Time{}); rerr != nil {
				return ok, rerr
			}
			continue
		}
		next := time.Time{}
		if d.Attempts+1 < s.MaxAttempts {
			wait := s.Backoff << d.Attempts
			if wait > time.Hour || wait <= 0 {
				wait = time.Hour
			}
			next = s.Clock().Add(wait)
		}
		s.Logger.Warn("webhook delivery failed", "webhook", d.WebhookID, "delivery", d.ID, "endpoint", d.Endpoint, "attempt", d.Attempts+1, "err", err, "retry_at", next)
		if rerr := s.Store.RecordAttempt(ctx, d.ID, false, status, err.Error(), next); rerr != nil {
			return ok, rerr
		}
	}
	return ok, nil
}

func (s *Sender) post(ctx context.Context, d *kiln.WebhookDelivery) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kiln-webhook")
	req.Header.Set(HeaderEvent, string(d.Event))
	req.Header.Set(HeaderDelivery, strconv.FormatInt(d.ID, 10))
	req.Header.Set(HeaderSignature, Sign(d.Secret, d.Payload))
	resp, err := s.HTTP.Do(req)
	if err != nil {
		// The client's error quotes the whole URL, credential and all.
		var ue *url.Error
		if errors.As(err, &ue) {
			return 0, fmt.Errorf("POST %s (webhook %d): %w", d.Endpoint, d.WebhookID, ue.Err)
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("%s (webhook %d) answered %s", d.Endpoint, d.WebhookID, resp.Status)
	}
	return resp.StatusCode, nil
}

// Run sends due deliveries every interval until ctx ends.
func (s *Sender) Run(ctx context.Context, every time.Duration) {
	s.defaults()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.SendDue(ctx); err != nil && ctx.Err() == nil {
			s.Logger.Error("webhook sender", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

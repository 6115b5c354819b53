package kiln

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// WebhookEvent names what a webhook is sent for.
type WebhookEvent string

const (
	EventReady    WebhookEvent = "ready"    // a version became ready
	EventPromoted WebhookEvent = "promoted" // a channel moved (promotion or rollback)
)

// ParseWebhookEvent parses an event name.
func ParseWebhookEvent(field, s string) (WebhookEvent, error) {
	switch WebhookEvent(s) {
	case EventReady, EventPromoted:
		return WebhookEvent(s), nil
	}
	return "", FieldErrorf(EINVALID, field, "unknown webhook event %q; use ready or promoted", s)
}

// Webhook is a URL told about events with HMAC-SHA256 signed JSON.
type Webhook struct {
	ID int64 `json:"id"`
	// URL is where events go. Chat and CI hooks carry a credential in it
	// (user:password, a secret path or query), so kiln keeps it but never
	// shows, logs or audits it: Endpoint stands in for it everywhere.
	URL string `json:"-"`
	// Endpoint is URL's scheme and host: what kiln shows (see URLEndpoint).
	Endpoint string `json:"endpoint"`
	// Secret is the HMAC key; it is kept (a signature needs it) but never
	// shown.
	Secret    string         `json:"-"`
	Events    []WebhookEvent `json:"events"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by"`
}

// Validate checks a webhook before it is recorded.
func (w *Webhook) Validate() error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL is not echoed: it may hold a credential.
		return FieldErrorf(EINVALID, "url", "the webhook URL is not an http(s) URL with a host; give e.g. https://ci.example.com/hooks/kiln")
	}
	if len(w.Secret) < 16 {
		return FieldErrorf(EINVALID, "secret", "the secret is %d bytes; use at least 16 (e.g. openssl rand -hex 32 > secret)", len(w.Secret))
	}
	if len(w.Events) == 0 {
		return FieldErrorf(EINVALID, "events", "no events given; use ready, promoted or both")
	}
	for i, e := range w.Events {
		if _, err := ParseWebhookEvent(fmt.Sprintf("events[%d]", i), string(e)); err != nil {
			return err
		}
	}
	return nil
}

// DeliveryStatus is where one webhook delivery is.
type DeliveryStatus string

const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed" // gave up after the last attempt
)

// WebhookDelivery is one event sent (or to be sent) to one webhook.
type WebhookDelivery struct {
	ID        int64          `json:"id"`
	WebhookID int64          `json:"webhook_id"`
	URL       string         `json:"-"` // the webhook's URL, never shown (see Webhook.URL)
	Endpoint  string         `json:"endpoint"`
	Secret    string         `json:"-"`
	Event     WebhookEvent   `json:"event"`
	Payload   []byte         `json:"-"`
	Status    DeliveryStatus `json:"status"`
	Attempts  int            `json:"attempts"`
	// NextAttemptAt is when a pending delivery is tried next.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	// ResponseStatus is the HTTP status of the last attempt (0: none).
	ResponseStatus int       `json:"response_status,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	DeliveredAt    time.Time `json:"delivered_at,omitzero"`
}

// WebhookStore keeps webhooks and their delivery log. ClaimDeliveries
// hands each due delivery to one sender across processes.
type WebhookStore interface {
	AddWebhook(ctx context.Context, w *Webhook) error
	ListWebhooks(ctx context.Context) ([]*Webhook, error)
	DeleteWebhook(ctx context.Context, id int64) error
	// EnqueueEvent queues payload for every webhook subscribed to event.
	EnqueueEvent(ctx context.Context, event WebhookEvent, payload []byte) (int, error)
	// ClaimDeliveries returns up to limit pending deliveries due now and
	// pushes their next attempt lease into the future, so no other sender
	// takes them meanwhile.
	ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]*WebhookDelivery, error)
	// RecordAttempt records an attempt's outcome: delivered, or failed with
	// the next attempt at next (zero next: give up).
	RecordAttempt(ctx context.Context, id int64, delivered bool, status int, errText string, next time.Time) error
	// Deliveries lists the delivery log newest first (webhook 0: all).
	Deliveries(ctx context.Context, webhookID int64, limit int) ([]*WebhookDelivery, error)
}

// URLEndpoint is what kiln shows of a URL that may hold a credential: its
// scheme and host ("https://hooks.slack.com"), without user, password,
// path or query. An unparseable URL shows as "(invalid URL)".
func URLEndpoint(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	return u.Scheme + "://" + u.Host
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Compile-time check that *DB is a kiln.WebhookStore.
var _ kiln.WebhookStore = (*DB)(nil)

// AddWebhook records a webhook and assigns its id.
func (db *DB) AddWebhook(ctx context.Context, w *kiln.Webhook) error {
	if w == nil {
		return kiln.Errorf(kiln.EINVALID, "no webhook given")
	}
	if err := w.Validate(); err != nil {
		return err
	}
	events := make([]string, len(w.Events))
	for i, e := range w.Events {
		events[i] = string(e)
	}
	return db.write(ctx, func(tx *tx) error {
		w.CreatedAt, w.CreatedBy = tx.now, kiln.ActorFrom(ctx)
		if err := tx.queryRow(ctx, `INSERT INTO webhooks (url, secret, events, created_at, created_by) VALUES (?, ?, ?, ?, ?) RETURNING id`,
			w.URL, w.Secret, strings.Join(events, ","), tx.timeArg(tx.now), w.CreatedBy).Scan(&w.ID); err != nil {
			return fmt.Errorf("add webhook: %w", err)
		}
		w.Endpoint = kiln.URLEndpoint(w.URL)
		return audit(ctx, tx, "webhook.add", fmt.Sprintf("webhook %d", w.ID), w.Endpoint+" "+strings.Join(events, ","))
	})
}

// ListWebhooks lists webhooks by id, secrets included (for the sender).
func (db *DB) ListWebhooks(ctx context.Context) ([]*kiln.Webhook, error) {
	var out []*kiln.Webhook
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.Webhook{}
		return eachRow(ctx, tx, `SELECT id, url, secret, events, created_at, created_by FROM webhooks ORDER BY id`, nil, func(rows *sql.Rows) error {
			w := &kiln.Webhook{}
			var events string
			if err := rows.Scan(&w.ID, &w.URL, &w.Secret, &events, dbTime{&w.CreatedAt}, &w.CreatedBy); err != nil {
				return err
			}
			w.Endpoint = kiln.URLEndpoint(w.URL)
			for _, e := range strings.Split(events, ",") {
				w.Events = append(w.Events, kiln.WebhookEvent(e))
			}
			out = append(out, w)
			return nil
		})
	})
	return out, err
}

// DeleteWebhook removes a webhook and its delivery log.
func (db *DB) DeleteWebhook(ctx context.Context, id int64) error {
	return db.write(ctx, func(tx *tx) error {
		if _, err := tx.exec(ctx, `DELETE FROM webhook_deliveries WHERE webhook_id = ?`, id); err != nil {
			return fmt.Errorf("delete deliveries of webhook %d: %w", id, err)
		}
		res, err := tx.exec(ctx, `DELETE FROM webhooks WHERE id = ?`, id)
		if err != nil {
			return fmt.Errorf("delete webhook %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "webhook %d not found; list them with `kiln webhook list`", id)
		}
		return audit(ctx, tx, "webhook.delete", fmt.Sprintf("webhook %d", id), "")
	})
}

// EnqueueEvent queues payload for every webhook subscribed to event.
func (db *DB) EnqueueEvent(ctx context.Context, event kiln.WebhookEvent, payload []byte) (int, error) {
	var n int
	err := db.write(ctx, func(tx *tx) error {
		var err error
		if n, err = enqueueEvent(ctx, tx, event, payload); err != nil {
			return err
		}
		return audit(ctx, tx, "webhook.event", "event "+string(event), fmt.Sprintf("%d deliveries queued", n))
	})
	return n, err
}

// enqueueEvent adds one pending delivery per subscribed webhook, in the
// caller's transaction, so the event and its deliveries commit together.
func enqueueEvent(ctx context.Context, tx *tx, event kiln.WebhookEvent, payload []byte) (int, error) {
	var ids []int64
	if err := eachRow(ctx, tx, `SELECT id, events FROM webhooks ORDER BY id`, nil, func(rows *sql.Rows) error {
		var id int64
		var events string
		if err := rows.Scan(&id, &events); err != nil {
			return err
		}
		for _, e := range strings.Split(events, ",") {
			if e == string(event) {
				ids = append(ids, id)
			}
		}
		return nil
	}); err != nil {
		return 0, fmt.Errorf("find webhooks for %s: %w", event, err)
	}
	for _, id := range ids {
		if _, err := tx.exec(ctx, `INSERT INTO webhook_deliveries (webhook_id, event, payload, status, next_attempt_at, created_at)
			VALUES (?, ?, ?, 'pending', ?, ?)`, id, string(event), string(payload), tx.timeArg(tx.now), tx.timeArg(tx.now)); err != nil {
			return 0, fmt.Errorf("queue %s delivery for webhook %d: %w", event, id, err)
		}
	}
	return len(ids), nil
}

const deliveryColumns = `d.id, d.webhook_id, w.url, w.secret, d.event, d.payload, d.status, d.attempts, d.next_attempt_at,
	d.last_error, d.response_status, d.created_at, d.delivered_at`

func scanDelivery(rows *sql.Rows) (*kiln.WebhookDelivery, error) {
	d := &kiln.WebhookDelivery{}
	var event, status, payload string
	err := rows.Scan(&d.ID, &d.WebhookID, &d.URL, &d.Secret, &event, &payload, &status, &d.Attempts, dbTime{&d.NextAttemptAt},
		&d.LastError, &d.ResponseStatus, dbTime{&d.CreatedAt}, dbTime{&d.DeliveredAt})
	d.Event, d.Status, d.Payload = kiln.WebhookEvent(event), kiln.DeliveryStatus(status), []byte(payload)
	d.Endpoint = kiln.URLEndpoint(d.URL)
	return d, err
}

// ClaimDeliveries takes due pending deliveries and moves their next
// attempt lease ahead, so another sender does not take them meanwhile.
func (db *DB) ClaimDeliveries(ctx context.Context, limit int, lease time.Duration) ([]*kiln.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 10
	}
	var out []*kiln.WebhookDelivery
	err := db.write(ctx, func(tx *tx) error {
		out = nil
		q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
			WHERE d.status = 'pending' AND d.next_attempt_at <= ? ORDER BY d.next_attempt_at, d.id LIMIT ?`
		if db.dialect == dialectPostgres {
			q += ` FOR UPDATE OF d SKIP LOCKED`
		}
		if err := eachRow(ctx, tx, q, []any{tx.timeArg(tx.now), limit}, func(rows *sql.Rows) error {
			d, err := scanDelivery(rows)
			if err == nil {
				out = append(out, d)
			}
			return err
		}); err != nil {
			return fmt.Errorf("find due webhook deliveries: %w", err)
		}
		for _, d := range out {
			if _, err := tx.exec(ctx, `UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?`, tx.timeArg(tx.now.Add(lease)), d.ID); err != nil {
				return fmt.Errorf("lease delivery %d: %w", d.ID, err)
			}
		}
		return nil
	})
	return out, err
}

// RecordAttempt records the outcome of one attempt.
func (db *DB) RecordAttempt(ctx context.Context, id int64, delivered bool, status int, errText string, next time.Time) error {
	return db.write(ctx, func(tx *tx) error {
		st, at, delAt := "pending", tx.timeArg(next), any(nil)
		switch {
		case delivered:
			st, at, delAt = "delivered", nil, tx.timeArg(tx.now)
		case next.IsZero():
			st = "failed"
		}
		res, err := tx.exec(ctx, `UPDATE webhook_deliveries SET status = ?, attempts = attempts + 1, next_attempt_at = ?, last_error = ?,
			response_status = ?, delivered_at = ? WHERE id = ? AND status = 'pending'`, st, at, truncate(errText, 1000), status, delAt, id)
		if err != nil {
			return fmt.Errorf("record delivery %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kiln.Errorf(kiln.ENOTFOUND, "no pending webhook delivery %d", id)
		}
		detail := st
		if status != 0 {
			detail += fmt.Sprintf(" (HTTP %d)", status)
		}
		if errText != "" {
			detail += ": " + truncate(errText, 200)
		}
		if st == "pending" {
			detail = "retry at " + next.UTC().Format(time.RFC3339) + ", " + detail
		}
		return audit(ctx, tx, "webhook.attempt", fmt.Sprintf("delivery %d", id), detail)
	})
}

// Deliveries lists the delivery log newest first.
func (db *DB) Deliveries(ctx context.Context, webhookID int64, limit int) ([]*kiln.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 100
	}
	q := `SELECT ` + deliveryColumns + ` FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id`
	args := []any{}
	if webhookID != 0 {
		q, args = q+` WHERE d.webhook_id = ?`, append(args, webhookID)
	}
	q += ` ORDER BY d.id DESC LIMIT ?`
	args = append(args, limit)
	var out []*kiln.WebhookDelivery
	err := db.read(ctx, func(tx *tx) error {
		out = []*kiln.WebhookDelivery{}
		return eachRow(ctx, tx, q, args, func(rows *sql.Rows) error {
			d, err := scanDelivery(rows)
			if err == nil {
				out = append(out, d)
			}
			return err
		})
	})
	return out, err
}

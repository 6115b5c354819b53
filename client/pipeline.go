package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// Compile-time checks: the pipeline commands that read and cancel runs,
// move channels and manage webhooks run over the API; running pipelines,
// sending webhooks and firing schedules stay with the server (their
// methods refuse and say so).
var (
	_ kiln.RunStore     = (*Client)(nil)
	_ kiln.ChannelStore = (*Client)(nil)
	_ kiln.WebhookStore = (*Client)(nil)
)

func runPath(id int64) string { return "/api/v1/runs/" + strconv.FormatInt(id, 10) }

// errRunsHere refuses the worker side of the run store: runs are claimed,
// run and finished by the server's workers.
func errRunsHere() error {
	return kiln.Errorf(kiln.EINVALID, "pipelines run on the kiln server (kiln serve's worker), not through --server; queue and run them there, or run this command without --server")
}

// EnqueueRun implements kiln.RunStore (refused: see errRunsHere).
func (c *Client) EnqueueRun(context.Context, *kiln.NewRun) (*kiln.Run, bool, error) {
	return nil, false, errRunsHere()
}

// FindRun implements kiln.RunStore.
func (c *Client) FindRun(ctx context.Context, id int64) (*kiln.Run, error) {
	r := &kiln.Run{}
	return r, c.do(ctx, http.MethodGet, runPath(id), nil, nil, r)
}

// ListRuns implements kiln.RunStore; a zero Limit lists up to 1000 (the
// API's most).
func (c *Client) ListRuns(ctx context.Context, f kiln.RunFilter) ([]*kiln.Run, int, error) {
	q := url.Values{}
	if f.Image != "" {
		q.Set("image", f.Image)
	}
	for _, s := range f.Status {
		q.Add("status", string(s))
	}
	limit := f.Limit
	if limit == 0 || limit > 1000 {
		limit = 1000
	}
	q.Set("limit", strconv.Itoa(limit))
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out struct {
		Runs  []*kiln.Run `json:"runs"`
		Total int         `json:"total"`
	}
	return out.Runs, out.Total, c.do(ctx, http.MethodGet, "/api/v1/runs", q, nil, &out)
}

// ClaimRun implements kiln.RunStore (refused: see errRunsHere).
func (c *Client) ClaimRun(context.Context, string) (*kiln.Run, error) { return nil, errRunsHere() }

// Heartbeat implements kiln.RunStore (refused: see errRunsHere).
func (c *Client) Heartbeat(context.Context, int64, string) error { return errRunsHere() }

// UpdateStage implements kiln.RunStore (refused: see errRunsHere).
func (c *Client) UpdateStage(context.Context, int64, string, int, kiln.Stage, *kiln.VersionRef) error {
	return errRunsHere()
}

// FinishRun implements kiln.RunStore (refused: see errRunsHere).
func (c *Client) FinishRun(context.Context, int64, string, kiln.RunStatus, string) error {
	return errRunsHere()
}

// AppendRunLog implements kiln.RunStore (refused: see errRunsHere).
func (c *Client) AppendRunLog(context.Context, int64, string, string) error { return errRunsHere() }

// RunLogs implements kiln.RunStore.
func (c *Client) RunLogs(ctx context.Context, id int64, afterSeq int64, limit int) ([]*kiln.RunLog, error) {
	q := url.Values{}
	if afterSeq > 0 {
		q.Set("after", strconv.FormatInt(afterSeq, 10))
	}
	if limit <= 0 || limit > pageSize {
		limit = pageSize
	}
	q.Set("limit", strconv.Itoa(limit))
	var out struct {
		Logs []*kiln.RunLog `json:"logs"`
	}
	return out.Logs, c.do(ctx, http.MethodGet, runPath(id)+"/logs", q, nil, &out)
}

// InterruptRuns implements kiln.RunStore. It interrupts nothing: a CLI on
// another machine holds no runs, and the server recovers the runs of its
// own dead workers when it starts and while it runs.
func (c *Client) InterruptRuns(context.Context, []string, time.Time, string, bool) ([]*kiln.Run, error) {
	return nil, nil
}

// ResumeRuns implements kiln.RunStore. It resumes nothing: the servers'
// pipeline workers queue interrupted runs again themselves.
func (c *Client) ResumeRuns(context.Context, int, string) ([]*kiln.Run, error) {
	return nil, nil
}

// RetryRun implements kiln.RunStore; the server records its own reason
// ("retried by token:NAME").
func (c *Client) RetryRun(ctx context.Context, id int64, _ string) (*kiln.Run, error) {
	r := &kiln.Run{}
	return r, c.do(ctx, http.MethodPost, runPath(id)+"/retry", nil, nil, r)
}

// ApproveStage implements kiln.RunStore.
func (c *Client) ApproveStage(ctx context.Context, id int64, stage string) (*kiln.Run, error) {
	r := &kiln.Run{}
	return r, c.do(ctx, http.MethodPost, runPath(id)+"/stages/"+url.PathEscape(stage)+"/approve", nil, nil, r)
}

// CancelRun implements kiln.RunStore (operator); the server records its
// own reason ("cancelled by token:NAME").
func (c *Client) CancelRun(ctx context.Context, id int64, _ string) (*kiln.Run, error) {
	r := &kiln.Run{}
	return r, c.do(ctx, http.MethodPost, runPath(id)+"/cancel", nil, nil, r)
}

// MarkReady implements kiln.RunStore (refused: the pipeline's ready
// stage runs on the server; `kiln version status` moves a version by hand).
func (c *Client) MarkReady(context.Context, kiln.VersionRef, string) (*kiln.Version, error) {
	return nil, errRunsHere()
}

// Channels implements kiln.ChannelStore.
func (c *Client) Channels(ctx context.Context, image string) ([]*kiln.Channel, error) {
	q := url.Values{}
	if image != "" {
		q.Set("image", image)
	}
	var out struct {
		Channels []*kiln.Channel `json:"channels"`
	}
	return out.Channels, c.do(ctx, http.MethodGet, "/api/v1/channels", q, nil, &out)
}

func channelPath(image, env string) string {
	return "/api/v1/images/" + url.PathEscape(image) + "/channels/" + url.PathEscape(env)
}

// FindChannel implements kiln.ChannelStore.
func (c *Client) FindChannel(ctx context.Context, image, env string) (*kiln.Channel, error) {
	var out struct {
		Channel *kiln.Channel `json:"channel"`
	}
	if err := c.do(ctx, http.MethodGet, channelPath(image, env), nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Channel, nil
}

// Promote implements kiln.ChannelStore; previous is sent as is, so the
// server checks the order the caller asked for.
func (c *Client) Promote(ctx context.Context, ref kiln.VersionRef, env, previous, reason string) (*kiln.Promotion, error) {
	in := map[string]any{"number": ref.Number, "after": previous}
	if reason != "" {
		in["reason"] = reason
	}
	p := &kiln.Promotion{}
	return p, c.do(ctx, http.MethodPost, channelPath(ref.Image, env), nil, in, p)
}

// Rollback implements kiln.ChannelStore.
func (c *Client) Rollback(ctx context.Context, image, env, reason string, force bool) (*kiln.Promotion, error) {
	in := map[string]any{}
	if reason != "" {
		in["reason"] = reason
	}
	if force {
		in["force"] = true
	}
	p := &kiln.Promotion{}
	return p, c.do(ctx, http.MethodPost, channelPath(image, env)+"/rollback", nil, in, p)
}

// Promotions implements kiln.ChannelStore; a limit of 0 is the store's
// 100, and at most 10000 come back (the API's most).
func (c *Client) Promotions(ctx context.Context, image, env string, limit int) ([]*kiln.Promotion, error) {
	q := url.Values{}
	if image != "" {
		q.Set("image", image)
	}
	if env != "" {
		q.Set("env", env)
	}
	q.Set("limit", strconv.Itoa(max(0, min(limit, pageSize))))
	var out struct {
		Promotions []*kiln.Promotion `json:"promotions"`
	}
	return out.Promotions, c.do(ctx, http.MethodGet, "/api/v1/promotions", q, nil, &out)
}

// AddWebhook implements kiln.WebhookStore (admin). The secret crosses to
// the server once, in the request body; w gets its id and creation.
func (c *Client) AddWebhook(ctx context.Context, w *kiln.Webhook) error {
	if w == nil {
		return kiln.Errorf(kiln.EINVALID, "no webhook given")
	}
	in := map[string]any{"url": w.URL, "secret": w.Secret, "events": w.Events}
	out := &kiln.Webhook{}
	if err := c.do(ctx, http.MethodPost, "/api/v1/webhooks", nil, in, out); err != nil {
		return err
	}
	out.Secret, out.URL = w.Secret, w.URL
	*w = *out
	return nil
}

// ListWebhooks implements kiln.WebhookStore (admin); the secrets stay on
// the server.
func (c *Client) ListWebhooks(ctx context.Context) ([]*kiln.Webhook, error) {
	var out struct {
		Webhooks []*kiln.Webhook `json:"webhooks"`
	}
	return out.Webhooks, c.do(ctx, http.MethodGet, "/api/v1/webhooks", nil, nil, &out)
}

// DeleteWebhook implements kiln.WebhookStore (admin).
func (c *Client) DeleteWebhook(ctx context.Context, id int64) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/webhooks/"+strconv.FormatInt(id, 10), nil, nil, nil)
}

// EnqueueEvent implements kiln.WebhookStore (not served by the API).
func (c *Client) EnqueueEvent(context.Context, kiln.WebhookEvent, []byte) (int, error) {
	return 0, noRoute("webhook events")
}

// ClaimDeliveries implements kiln.WebhookStore. It claims nothing: a CLI
// on another machine is no webhook sender (it would need the webhooks'
// secrets); the server's sender delivers what a promotion queued.
func (c *Client) ClaimDeliveries(context.Context, int, time.Duration) ([]*kiln.WebhookDelivery, error) {
	return nil, nil
}

// RecordAttempt implements kiln.WebhookStore (not served by the API).
func (c *Client) RecordAttempt(context.Context, int64, bool, int, string, time.Time) error {
	return noRoute("webhook deliveries")
}

// Deliveries implements kiln.WebhookStore (not served by the API).
func (c *Client) Deliveries(context.Context, int64, int) ([]*kiln.WebhookDelivery, error) {
	return nil, noRoute("webhook deliveries")
}

// ClaimSchedule implements pipeline.ScheduleStore: schedules fire on the
// server (kiln serve), never from a CLI.
func (c *Client) ClaimSchedule(context.Context, string, string, string, func(time.Time) time.Time) (bool, error) {
	return false, errRunsHere()
}

package kiln

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"time"
)

// RunStatus is where a pipeline run is. A run is a job in the queue: at
// most one run per image is running, and at most one more is queued
// (further triggers coalesce into the queued one).
type RunStatus string

const (
	// RunQueued: waiting for a worker (and for the run it waits after).
	RunQueued RunStatus = "queued"
	// RunRunning: a worker holds it and renews its lease.
	RunRunning RunStatus = "running"
	// RunWaiting: a stage waits for an approval (`kiln approve RUN STAGE`).
	RunWaiting RunStatus = "waiting"
	// RunSucceeded: every stage passed (or had nothing to do).
	RunSucceeded RunStatus = "succeeded"
	// RunFailed: a stage failed; `kiln run retry` resumes from it.
	RunFailed RunStatus = "failed"
	// RunInterrupted: its worker died or was killed; `kiln run retry` resumes.
	RunInterrupted RunStatus = "interrupted"
	// RunCancelled: stopped by a user, or because the run it waited after
	// did not succeed.
	RunCancelled RunStatus = "cancelled"
)

// Done reports whether the run has ended (it may still be retried).
func (s RunStatus) Done() bool {
	switch s {
	case RunSucceeded, RunFailed, RunInterrupted, RunCancelled:
		return true
	}
	return false
}

// StageKind is what a stage does.
type StageKind string

const (
	StageBuild   StageKind = "build"   // make a candidate version (or find the image up to date)
	StageTest    StageKind = "test"    // boot a temporary instance from the final image and run server tests
	StageScan    StageKind = "scan"    // match the version's packages against known advisories
	StageDeliver StageKind = "deliver" // point an environment's channel at the version
)

// StageStatus is where one stage of a run is.
type StageStatus string

const (
	StagePending     StageStatus = "pending"
	StageRunning     StageStatus = "running"
	StagePassed      StageStatus = "passed"
	StageWarned      StageStatus = "warned" // passed, with findings the policy only warns about
	StageFailed      StageStatus = "failed"
	StageSkipped     StageStatus = "skipped" // nothing to do (the image was up to date)
	StageWaiting     StageStatus = "waiting" // waits for an approval
	StageApproved    StageStatus = "approved"
	StageInterrupted StageStatus = "interrupted"
)

// Passed reports whether a later stage may run after this one.
func (s StageStatus) Passed() bool {
	return s == StagePassed || s == StageWarned || s == StageSkipped
}

// Gate says whether a stage starts by itself or waits for a person.
type Gate string

const (
	GateAuto     Gate = "auto"
	GateApproval Gate = "approval"
)

// Stage is one step of a run, in the order the pipeline declares.
type Stage struct {
	Name string    `json:"name"`
	Kind StageKind `json:"kind"`
	// Environment is the channel a deliver stage promotes to.
	Environment string      `json:"environment,omitempty"`
	Gate        Gate        `json:"gate,omitempty"`
	Status      StageStatus `json:"status"`
	StartedAt   time.Time   `json:"started_at,omitzero"`
	FinishedAt  time.Time   `json:"finished_at,omitzero"`
	// Detail says what the stage found or did, or why it failed.
	Detail string `json:"detail,omitempty"`
	// ApprovedBy names who approved a gated stage.
	ApprovedBy string `json:"approved_by,omitempty"`
}

// Run is one pass of an image through its pipeline.
type Run struct {
	ID    int64  `json:"id"`
	Image string `json:"image"`
	// Estate is the estate directory the image definition is read from,
	// and Vars the estate variables set for the run.
	Estate string            `json:"estate"`
	Vars   map[string]string `json:"vars,omitempty"`
	// Trigger says why the run was started; coalesced triggers are joined
	// with "; ".
	Trigger string    `json:"trigger"`
	Status  RunStatus `json:"status"`
	Stages  []Stage   `json:"stages"`
	// Version is the version the run made or found up to date.
	Version *VersionRef `json:"version,omitempty"`
	// After is a run that must end first (a base image's run); when it does
	// not succeed, this run is cancelled.
	After int64 `json:"after,omitempty"`
	// Force builds even when the image is up to date.
	Force bool `json:"force,omitempty"`
	// Worker names the process holding a running run ("host:pid").
	Worker string `json:"worker,omitempty"`
	// Reason says why the run failed, was interrupted or cancelled.
	Reason      string    `json:"reason,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	StartedAt   time.Time `json:"started_at,omitzero"`
	FinishedAt  time.Time `json:"finished_at,omitzero"`
	HeartbeatAt time.Time `json:"heartbeat_at,omitzero"`
}

// StageIndex returns the index of the named stage, or -1.
func (r *Run) StageIndex(name string) int {
	for i := range r.Stages {
		if r.Stages[i].Name == name {
			return i
		}
	}
	return -1
}

// Elapsed is how long the run has worked: from its start to its end, to
// its last finished stage while it waits, or until now while it runs.
func (r *Run) Elapsed(now time.Time) time.Duration {
	if r.StartedAt.IsZero() {
		return 0
	}
	end := r.FinishedAt
	if end.IsZero() && r.Status != RunRunning {
		for _, s := range r.Stages {
			if s.FinishedAt.After(end) {
				end = s.FinishedAt
			}
		}
	}
	if end.IsZero() {
		end = now
	}
	return end.Sub(r.StartedAt)
}

// NewRun is a request to run an image's pipeline.
type NewRun struct {
	Image   string
	Estate  string
	Vars    map[string]string
	Trigger string
	Stages  []Stage
	After   int64
	Force   bool
}

// Validate checks a new run before it is queued.
func (nr *NewRun) Validate() error {
	if err := ValidateImageName(nr.Image); err != nil {
		return err
	}
	if nr.Estate == "" {
		return FieldErrorf(EINVALID, "estate", "no estate directory given; the run reads the image definition from it")
	}
	if nr.Trigger == "" {
		return FieldErrorf(EINVALID, "trigger", "no trigger reason given; say why the run starts, e.g. \"manual\"")
	}
	if len(nr.Stages) == 0 {
		return FieldErrorf(EINVALID, "stages", "a run needs at least one stage")
	}
	seen := map[string]bool{}
	for i, s := range nr.Stages {
		f := fmt.Sprintf("stages[%d]", i)
		if s.Name == "" || seen[s.Name] {
			return FieldErrorf(EINVALID, f, "stage name %q is empty or used twice; give each stage its own name", s.Name)
		}
		seen[s.Name] = true
		switch s.Kind {
		case StageBuild, StageTest, StageScan:
		case StageDeliver:
			if err := ValidateEnvironment(f+".environment", s.Environment); err != nil {
				return err
			}
		default:
			return FieldErrorf(EINVALID, f, "unknown stage kind %q; use build, test, scan or deliver", s.Kind)
		}
	}
	return nil
}

// RunFilter selects runs; zero fields do not filter.
type RunFilter struct {
	Image  string
	Status []RunStatus
	Limit  int
	Offset int
}

// RunLog is one chunk of a run's log.
type RunLog struct {
	Seq   int64     `json:"seq"`
	Stage string    `json:"stage"`
	Time  time.Time `json:"time"`
	Text  string    `json:"text"`
}

// RunStore is the run queue and record. Claiming is atomic across
// processes sharing the database: a run is handed to one worker only
// (SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL, the write lock on
// SQLite).
//
// Errors: ENOTFOUND for an unknown run or stage; ECONFLICT when the run's
// state forbids the change or the worker no longer holds the run.
type RunStore interface {
	// EnqueueRun queues a run. When the image already has a queued run,
	// the trigger is added to that one and coalesced is true.
	EnqueueRun(ctx context.Context, nr *NewRun) (run *Run, coalesced bool, err error)
	FindRun(ctx context.Context, id int64) (*Run, error)
	// ListRuns returns matching runs newest first and the number of matches.
	ListRuns(ctx context.Context, f RunFilter) ([]*Run, int, error)
	// ClaimRun hands the oldest runnable queued run to worker, or returns
	// nil when there is none. A queued run is runnable when its image has
	// no running run and the run it waits after has ended; a run whose
	// After run ended without success is cancelled instead.
	ClaimRun(ctx context.Context, worker string) (*Run, error)
	// Heartbeat renews worker's hold on a running run.
	Heartbeat(ctx context.Context, id int64, worker string) error
	// UpdateStage records one stage (and the version the run made, when
	// set) while worker holds the run.
	UpdateStage(ctx context.Context, id int64, worker string, index int, st Stage, version *VersionRef) error
	// FinishRun ends a running run with status (succeeded, failed,
	// waiting, cancelled) and reason.
	FinishRun(ctx context.Context, id int64, worker string, status RunStatus, reason string) error
	AppendRunLog(ctx context.Context, id int64, stage, text string) error
	// RunLogs returns the log chunks after seq, oldest first.
	RunLogs(ctx context.Context, id int64, afterSeq int64, limit int) ([]*RunLog, error)
	// InterruptRuns marks running runs interrupted when their worker is
	// one of dead or their heartbeat is older than staleBefore; the
	// running stage becomes interrupted too.
	InterruptRuns(ctx context.Context, dead []string, staleBefore time.Time, reason string) ([]*Run, error)
	// RetryRun queues a failed or interrupted run again; its failed stage
	// and those after it become pending.
	RetryRun(ctx context.Context, id int64, reason string) (*Run, error)
	// ApproveStage approves a waiting stage and queues the run again.
	ApproveStage(ctx context.Context, id int64, stage string) (*Run, error)
	// CancelRun cancels a queued or waiting run.
	CancelRun(ctx context.Context, id int64, reason string) (*Run, error)
	// MarkReady moves a tested version to ready and queues the "ready"
	// webhooks, in one transaction.
	MarkReady(ctx context.Context, ref VersionRef, reason string) (*Version, error)
}

var envRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidateEnvironment checks an environment (channel) name: dev, staging, prod.
func ValidateEnvironment(field, env string) error {
	if !envRE.MatchString(env) {
		return FieldErrorf(EINVALID, field, "environment %q is not allowed; use 1–32 lowercase letters, digits and dashes, starting with a letter (e.g. staging)", env)
	}
	return nil
}

// DefaultEnvironments are the delivery environments, in order, when a
// pipeline does not name its own.
var DefaultEnvironments = []string{"dev", "staging", "prod"}

// Channel is an environment's pointer at one version of an image line:
// what "the version in prod of appserver" means.
type Channel struct {
	Image       string     `json:"image"`
	Environment string     `json:"environment"`
	Version     VersionRef `json:"version"`
	Name        string     `json:"name"`
	UpdatedAt   time.Time  `json:"updated_at"`
	UpdatedBy   string     `json:"updated_by"`
}

// PromotionKind tells a promotion from a rollback.
type PromotionKind string

const (
	PromotionPromote  PromotionKind = "promote"
	PromotionRollback PromotionKind = "rollback"
)

// Promotion is one recorded move of a channel.
type Promotion struct {
	ID          int64         `json:"id"`
	Image       string        `json:"image"`
	Environment string        `json:"environment"`
	Kind        PromotionKind `json:"kind"`
	// Number is the version the channel points at after the move, Previous
	// the one before (0: none).
	Number   int       `json:"number"`
	Previous int       `json:"previous,omitempty"`
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// ChannelStore keeps channels and their promotions. Promote and Rollback
// record the promotion, move the channel and queue "promoted" webhooks in
// one transaction.
//
// Errors: ENOTFOUND for an unknown version or channel; ECONFLICT when a
// version is not ready, has not been in the previous environment, or there
// is nothing to roll back to.
type ChannelStore interface {
	// Channels lists channels of image (all images when empty).
	Channels(ctx context.Context, image string) ([]*Channel, error)
	FindChannel(ctx context.Context, image, env string) (*Channel, error)
	// Promote points env at ref; previous names the environment the
	// version must have been promoted to before ("" for the first).
	Promote(ctx context.Context, ref VersionRef, env, previous, reason string) (*Promotion, error)
	// Rollback points env back at the version it held before its latest
	// promotion.
	Rollback(ctx context.Context, image, env, reason string) (*Promotion, error)
	// Promotions lists moves newest first; empty image or env do not filter.
	Promotions(ctx context.Context, image, env string, limit int) ([]*Promotion, error)
}

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
	ID  int64  `json:"id"`
	URL string `json:"url"`
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
		return FieldErrorf(EINVALID, "url", "%q is not an http(s) URL; give e.g. https://ci.example.com/hooks/kiln", w.URL)
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
	URL       string         `json:"url"`
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

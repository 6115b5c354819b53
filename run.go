package kiln

import (
	"context"
	"fmt"
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
	// RunInterrupted: its worker died, was killed or stopped. A kiln serve
	// worker queues it again from the interrupted stage when ResumePending
	// is set; `kiln run retry` does so by hand.
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
	// RequestedBy is the actor that asked for the run through the API
	// ("token:ci"); the worker acts as it (status changes, promotions),
	// empty for runs started by the server or on its machine.
	RequestedBy string `json:"requested_by,omitempty"`
	// Worker names the process holding a running run ("host:pid").
	Worker string `json:"worker,omitempty"`
	// Reason says why the run failed, was interrupted or cancelled.
	Reason string `json:"reason,omitempty"`
	// ResumePending is set on a run interrupted because its worker died,
	// went silent or was stopped with its kiln serve: a pipeline worker
	// will queue it again (once). A foreground `kiln run` the user
	// stopped leaves it unset.
	ResumePending bool `json:"resume_pending,omitempty"`
	// Resumes counts the times workers queued the run again by themselves
	// after an interruption since it was last queued by a user.
	Resumes     int       `json:"resumes,omitempty"`
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
	// RequestedBy: see Run.RequestedBy.
	RequestedBy string
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
	// running stage becomes interrupted too. resume sets ResumePending:
	// a worker, not a user, stopped the run.
	InterruptRuns(ctx context.Context, dead []string, staleBefore time.Time, reason string, resume bool) ([]*Run, error)
	// RetryRun queues a failed or interrupted run again; its failed stage
	// and those after it become pending.
	RetryRun(ctx context.Context, id int64, reason string) (*Run, error)
	// ResumeRuns queues again, as RetryRun does, every interrupted run
	// whose resume is pending and that was resumed fewer than limit times
	// before; each interruption is resumed once, however many workers
	// ask. It returns the runs it looked at: queued again (audited as
	// run.resume), or left interrupted with the reason why (the limit
	// reached, or another run of the image queued), their resume no
	// longer pending.
	ResumeRuns(ctx context.Context, limit int, reason string) ([]*Run, error)
	// ApproveStage approves a waiting stage and queues the run again.
	ApproveStage(ctx context.Context, id int64, stage string) (*Run, error)
	// CancelRun cancels a queued or waiting run.
	CancelRun(ctx context.Context, id int64, reason string) (*Run, error)
	// MarkReady moves a tested version to ready and queues the "ready"
	// webhooks, in one transaction.
	MarkReady(ctx context.Context, ref VersionRef, reason string) (*Version, error)
}

// RunRequest asks for pipeline runs of an estate's images.
type RunRequest struct {
	// Estate names an estate an admin registered on the server (`kiln
	// estate add`); its directory is accepted too when it is a registered
	// estate's.
	Estate string            `json:"estate"`
	Images []string          `json:"images,omitempty"`
	All    bool              `json:"all,omitempty"`
	Force  bool              `json:"force,omitempty"`
	Vars   map[string]string `json:"vars,omitempty"`
	// Trigger says why the runs start ("refresh: DSA-5000-1: 3
	// instance(s) of web"); each run's trigger is it, followed by who
	// asked through the API. Empty: only who asked.
	Trigger string `json:"trigger,omitempty"`
	// Role is the requesting token's role (set by the API, never sent): a
	// pipeline that delivers automatically needs the operator role.
	Role Role `json:"-"`
}

// RunStarter queues pipeline runs for the worker (kiln serve) to carry
// out: the API's way to start runs, and the remote CLI's.
type RunStarter interface {
	StartRuns(ctx context.Context, req RunRequest) ([]*Run, error)
}

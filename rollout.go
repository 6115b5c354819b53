package kiln

import (
	"context"
	"time"
)

// RolloutState is where a rollout is.
type RolloutState string

const (
	// RolloutRunning: replacing instances batch by batch.
	RolloutRunning RolloutState = "running"
	// RolloutRollingBack: a check failed; putting the previous version back.
	RolloutRollingBack RolloutState = "rolling-back"
	// RolloutSucceeded: every instance runs the new version.
	RolloutSucceeded RolloutState = "succeeded"
	// RolloutRolledBack: the previous version serves again, new instances are gone.
	RolloutRolledBack RolloutState = "rolled-back"
	// RolloutFailed: the rollback itself could not finish; an operator must look.
	RolloutFailed RolloutState = "failed"
)

// Done reports whether the rollout has ended.
func (s RolloutState) Done() bool {
	return s == RolloutSucceeded || s == RolloutRolledBack || s == RolloutFailed
}

// Rollout replaces a service's instances with instances of another version.
type Rollout struct {
	ID      int64        `json:"id"`
	Service string       `json:"service"`
	From    VersionRef   `json:"from,omitzero"`
	To      VersionRef   `json:"to"`
	State   RolloutState `json:"state"`
	// Batch counts batches finished (in the current direction).
	Batch  int    `json:"batch"`
	Reason string `json:"reason,omitempty"`
	// BatchTimes are how long each finished batch took.
	BatchTimes []time.Duration `json:"batch_times_ns,omitempty"`
	// FromConfig is the configuration digest of the instances the rollout
	// replaces, ToConfig the one it launches ("" for none); a rollback
	// launches FromConfig's configuration again.
	FromConfig string `json:"from_config_digest,omitempty"`
	ToConfig   string `json:"to_config_digest,omitempty"`
	// Configs are kept by CreateRollout with the rollout, by digest (for
	// FromConfig and ToConfig), so that either can be launched again.
	Configs    []*LaunchConfigRecord `json:"-"`
	StartedBy  string                `json:"started_by"`
	StartedAt  time.Time             `json:"started_at"`
	UpdatedAt  time.Time             `json:"updated_at"`
	FinishedAt time.Time             `json:"finished_at,omitzero"`
}

// RolloutStore keeps rollouts and break-glass records.
//
// Errors: ECONFLICT when a service already has a rollout in progress,
// ENOTFOUND for an unknown rollout, service or instance.
type RolloutStore interface {
	CreateRollout(ctx context.Context, r *Rollout) error
	FindRollout(ctx context.Context, id int64) (*Rollout, error)
	// ActiveRollout returns the service's unfinished rollout, ENOTFOUND if none.
	ActiveRollout(ctx context.Context, service string) (*Rollout, error)
	ListRollouts(ctx context.Context, service string, limit int) ([]*Rollout, error)
	UpdateRollout(ctx context.Context, r *Rollout) error

	// BreakGlass records the access, marks the instance tainted and writes
	// an audit entry, in one transaction; it returns the tainted instance.
	BreakGlass(ctx context.Context, b *BreakGlass) (*Instance, error)
	ListBreakGlass(ctx context.Context, instanceID string) ([]*BreakGlass, error)
}

// RolloutRequest asks for a rollout of one service.
type RolloutRequest struct {
	Service string `json:"service"`
	// To is the version to roll out; zero picks the service environment's
	// channel version, else the image's latest ready version.
	To           VersionRef `json:"to,omitzero"`
	AllowUnready bool       `json:"allow_unready,omitempty"`
	// Resume continues the service's interrupted rollout (forward, or its
	// rollback) instead of starting one; To must then be zero.
	Resume bool `json:"resume,omitempty"`
}

// RolloutProgress is a rollout with the progress lines it printed where it
// runs.
type RolloutProgress struct {
	Rollout *Rollout `json:"rollout"`
	// Lines are the progress lines from the asked-for line on; Next is the
	// line to ask for next time.
	Lines []string `json:"progress"`
	Next  int      `json:"next"`
	// Running is true while the process asked runs the rollout. A rollout
	// that is not Done and not Running was interrupted (its process
	// stopped) and waits for a resume.
	Running bool `json:"running"`
	// Code and Error are the error the rollout ended with, if any (a
	// rollback that could not finish, a store failure).
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"`
}

// RolloutStarter runs rollouts on the machine whose platform holds the
// services' instances: in the caller's process (the local CLI), where
// StartRollout returns once the rollout ended, or in the background (kiln
// serve), where it returns the rollout as recorded at its start and
// RolloutProgress follows it.
//
// Errors: ENOTFOUND for an unknown service or version, EINVALID for a
// version of another image or no version to roll out, ECONFLICT for a
// version that is not ready or a service with a rollout in progress.
// StartRollout may return the rollout together with the error it ended
// with.
type RolloutStarter interface {
	StartRollout(ctx context.Context, req RolloutRequest) (*Rollout, error)
	// RolloutProgress returns the rollout and its progress lines from line
	// after on (the lines are kept by the process that runs it).
	RolloutProgress(ctx context.Context, id int64, after int) (*RolloutProgress, error)
}

// RolloutLeaser makes one process at a time the runner of a rollout. The
// process running a rollout holds its lease and renews it while it runs;
// another process (a second kiln serve, or `kiln rollout --resume` on the
// same machine) may take the rollout over only once the lease has ended,
// because its owner died or stopped without releasing it. Times are the
// store's clock: ttl counts from the store's now.
type RolloutLeaser interface {
	// AcquireRollout makes owner the runner of unfinished rollout id for
	// ttl, in one conditional update: when nobody holds it, its lease has
	// ended, or owner holds it already. ECONFLICT naming the holder and its
	// lease's end otherwise, or when the rollout has ended; ENOTFOUND for
	// no such rollout.
	AcquireRollout(ctx context.Context, id int64, owner string, ttl time.Duration) error
	// RenewRollout extends owner's lease on rollout id to ttl from now;
	// ECONFLICT when owner no longer holds it (another process took it
	// over after the lease ended) or the rollout has ended.
	RenewRollout(ctx context.Context, id int64, owner string, ttl time.Duration) error
	// ReleaseRollout ends owner's lease on rollout id, so another process
	// may resume it at once; nothing happens when owner does not hold it.
	ReleaseRollout(ctx context.Context, id int64, owner string) error
}

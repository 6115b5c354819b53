package kiln

import "context"

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

// ServiceHost is what only the machine that runs a service's front end
// and instances can do to a service.
type ServiceHost interface {
	// StartFrontEnd starts the service's supervised front-end process
	// unless it runs; it outlives the caller.
	StartFrontEnd(ctx context.Context, service string) error
	StopFrontEnd(ctx context.Context, service string) error
	FrontEndRunning(ctx context.Context, service string) (bool, error)
	// RemoveService deletes the service and stops its front end; with
	// destroyInstances it first destroys the service's instances (which
	// it returns), else a service with instances is refused (ECONFLICT).
	RemoveService(ctx context.Context, service string, destroyInstances bool) (destroyed []string, err error)
}

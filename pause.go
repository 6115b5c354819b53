package kiln

import (
	"context"
	"strings"
	"time"
)

// PauseKind is what a pause stops the autopilot for.
type PauseKind string

const (
	// PauseService: no automatic refresh rolls the service (rollouts asked
	// for by a person still run).
	PauseService PauseKind = "service"
	// PauseEnvironment: no automatic refresh in the environment at all.
	PauseEnvironment PauseKind = "environment"
)

// Pause stops kiln serve's automatic work on a service or an environment
// until someone resumes it; who paused it, when and why is kept (and
// audited).
type Pause struct {
	Kind   PauseKind `json:"kind"`
	Name   string    `json:"name"`
	Actor  string    `json:"actor"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Validate checks a pause before it is recorded.
func (p *Pause) Validate() error {
	switch p.Kind {
	case PauseService:
		if !serviceNameRE.MatchString(p.Name) || strings.HasSuffix(p.Name, "-") {
			return FieldErrorf(EINVALID, "name", "service name %q is not allowed; name a service from `kiln service list`", p.Name)
		}
	case PauseEnvironment:
		if err := ValidateEnvironment("name", p.Name); err != nil {
			return err
		}
	default:
		return FieldErrorf(EINVALID, "kind", "unknown pause kind %q; pause a service or an environment", p.Kind)
	}
	if len(p.Reason) < 3 || len(p.Reason) > 1024 {
		return FieldErrorf(EINVALID, "reason", "say why the autopilot stops (3 to 1024 bytes), e.g. --reason \"CHG-42: freeze for the release\"; it is recorded with your name")
	}
	return nil
}

// PauseStore keeps pauses.
type PauseStore interface {
	// Pause records p (audited); pausing what is paused replaces the
	// reason.
	Pause(ctx context.Context, p *Pause) error
	// Resume removes a pause (audited); ENOTFOUND when there is none.
	Resume(ctx context.Context, kind PauseKind, name string) error
	// FindPause returns the pause of kind and name; ENOTFOUND when none.
	FindPause(ctx context.Context, kind PauseKind, name string) (*Pause, error)
	ListPauses(ctx context.Context) ([]*Pause, error)
}

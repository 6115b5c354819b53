package kiln

import (
	"context"
	"time"
)

// InstanceState is where an instance is in its life.
type InstanceState string

const (
	InstanceStarting  InstanceState = "starting"
	InstanceRunning   InstanceState = "running"
	InstanceDegraded  InstanceState = "degraded" // booted, but some units failed
	InstanceStopped   InstanceState = "stopped"
	InstanceCrashed   InstanceState = "crashed" // its process ended without kiln asking
	InstanceDestroyed InstanceState = "destroyed"
	InstanceLost      InstanceState = "lost" // registered elsewhere, not checked in for too long
)

// Instance is a server made from an image version: launched by kiln on a
// platform, or registered/checked in from elsewhere.
type Instance struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Version     VersionRef        `json:"version"`
	Environment string            `json:"environment"`
	Platform    string            `json:"platform"` // "local", "external", …
	State       InstanceState     `json:"state"`
	Address     string            `json:"address,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	LaunchedAt  time.Time         `json:"launched_at"`
	LastSeenAt  time.Time         `json:"last_seen_at,omitzero"`
	// Tainted is set when someone opened break-glass access to it.
	Tainted bool `json:"tainted,omitempty"`
}

// InstanceFilter selects instances. Zero fields do not filter.
type InstanceFilter struct {
	Image       string
	Version     *VersionRef
	Environment string
	Platform    string
	// States keeps instances in any of these states; empty keeps all but
	// destroyed ones.
	States []InstanceState
	Limit  int
	Offset int
}

// Inventory records instances: launched by kiln, registered by hand or
// imported, or checked in by the servers themselves. Errors: ENOTFOUND for
// an unknown instance, or an instance naming an unknown image version;
// ECONFLICT for a duplicate id or name.
type Inventory interface {
	// CreateInstance records a new instance; an empty ID is assigned.
	CreateInstance(ctx context.Context, inst *Instance) error
	// FindInstance finds an instance by id or by name.
	FindInstance(ctx context.Context, idOrName string) (*Instance, error)
	ListInstances(ctx context.Context, f InstanceFilter) ([]*Instance, int, error)
	// SetInstanceState records a state change (with a reason in the log).
	SetInstanceState(ctx context.Context, id string, state InstanceState, reason string) (*Instance, error)
	// DeleteInstance removes an instance record (deregistration).
	DeleteInstance(ctx context.Context, id string) error
}

package kiln

import "time"

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

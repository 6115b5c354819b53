package kiln

import (
	"context"
	"maps"
	"slices"
	"strings"
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

// InstanceStates lists every instance state.
var InstanceStates = []InstanceState{InstanceStarting, InstanceRunning, InstanceDegraded, InstanceStopped, InstanceCrashed, InstanceDestroyed, InstanceLost}

// Valid reports whether s is a known state.
func (s InstanceState) Valid() bool { return slices.Contains(InstanceStates, s) }

func instanceStateNames() []string {
	out := make([]string, len(InstanceStates))
	for i, s := range InstanceStates {
		out[i] = string(s)
	}
	return out
}

// ParseInstanceState parses a state name, with a message listing the valid ones.
func ParseInstanceState(field, s string) (InstanceState, error) {
	st := InstanceState(s)
	if !st.Valid() {
		return "", FieldErrorf(EINVALID, field, "unknown instance state %q; use one of %s", s, strings.Join(instanceStateNames(), ", "))
	}
	return st, nil
}

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
	// LaunchedByKiln is set on instances kiln launched itself (launch/):
	// kiln knows their state, and only the agent token kiln gave one at
	// launch may check it in.
	LaunchedByKiln bool `json:"launched_by_kiln,omitempty"`
	// AgentTokenSHA256, set by a launch, is the hex SHA-256 of the agent
	// token the instance was given (LaunchConfig.AgentTokenSHA256): the
	// inventory binds its check-ins to that token when it records it.
	// Never shown nor stored as such.
	AgentTokenSHA256 string `json:"-"`
	// ConfigDigest is the digest of the launch configuration it was given
	// (LaunchConfig.Digest), ConfigSource what produced it; empty for none.
	ConfigDigest string `json:"config_digest,omitempty"`
	ConfigSource string `json:"config_source,omitempty"`
}

// Limits on instance fields.
const (
	MaxInstanceID = 128
	MaxLabels     = 64
)

// ValidateInstanceID checks an instance id: 1–128 printable characters
// without spaces (cloud ids, UUIDs, machine names).
func ValidateInstanceID(field, id string) error {
	if id == "" {
		return FieldErrorf(EINVALID, field, "instance id is empty; give the server's id (cloud instance id, machine-id or hostname)")
	}
	if len(id) > MaxInstanceID {
		return FieldErrorf(EINVALID, field, "instance id is %d bytes; the limit is %d", len(id), MaxInstanceID)
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f || r == ',' {
			return FieldErrorf(EINVALID, field, "instance id %q contains a space, comma or control character; use letters, digits and -_.:", id)
		}
	}
	return nil
}

// ValidateInstance checks an instance before it is recorded. field prefixes
// the field names in errors ("instances[3]", "line 7").
func ValidateInstance(field string, inst *Instance) error {
	at := func(f string) string {
		if field == "" {
			return f
		}
		return field + "." + f
	}
	if inst.ID != "" {
		if err := ValidateInstanceID(at("id"), inst.ID); err != nil {
			return err
		}
	}
	if inst.Name != "" {
		if err := validateName(at("name"), inst.Name); err != nil {
			return err
		}
	}
	if err := ValidateImageName(inst.Version.Image); err != nil {
		return FieldErrorf(EINVALID, at("image"), "image %q is not a valid image name", inst.Version.Image)
	}
	if inst.Version.Number < 1 {
		return FieldErrorf(EINVALID, at("version"), "version number %d of %s is not valid; it must be ≥ 1", inst.Version.Number, inst.Version.Image)
	}
	if err := validateName(at("environment"), inst.Environment); err != nil {
		return err
	}
	if err := validateName(at("platform"), inst.Platform); err != nil {
		return err
	}
	if err := validateName(at("address"), inst.Address); err != nil {
		return err
	}
	if inst.State != "" && !inst.State.Valid() {
		return FieldErrorf(EINVALID, at("state"), "unknown instance state %q; use one of %s", inst.State, strings.Join(instanceStateNames(), ", "))
	}
	if inst.ConfigDigest != "" {
		if err := ValidateDigest(at("config_digest"), inst.ConfigDigest); err != nil {
			return err
		}
	}
	if err := validateName(at("config_source"), inst.ConfigSource); err != nil {
		return err
	}
	return validateLabels(at("labels"), inst.Labels)
}

func validateName(field, s string) error {
	if len(s) > 255 {
		return FieldErrorf(EINVALID, field, "%s is %d bytes; the limit is 255", field, len(s))
	}
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return FieldErrorf(EINVALID, field, "%s %q contains a control character", field, s)
		}
	}
	return nil
}

func validateLabels(field string, labels map[string]string) error {
	if len(labels) > MaxLabels {
		return FieldErrorf(EINVALID, field, "%d labels given; the limit is %d", len(labels), MaxLabels)
	}
	ok := true
	for k, v := range labels {
		if !validLabel(k, v) {
			ok = false
			break
		}
	}
	if ok {
		// The common case, on every check-in: nothing to sort for.
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if k == "" || len(k) > 128 || strings.ContainsAny(k, "=,\n\t") {
			return FieldErrorf(EINVALID, field, "label key %q is not allowed; use 1–128 characters without '=', ',' or whitespace control characters", k)
		}
		if len(labels[k]) > 1024 {
			return FieldErrorf(EINVALID, field, "label %s is %d bytes; the limit is 1024", k, len(labels[k]))
		}
	}
	return nil
}

// validLabel reports whether validateLabels accepts the label k=v.
func validLabel(k, v string) bool {
	return k != "" && len(k) <= 128 && !strings.ContainsAny(k, "=,\n\t") && len(v) <= 1024
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

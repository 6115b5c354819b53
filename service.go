package kiln

import (
	"context"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Service is a set of instances of one image line in one environment behind
// a front end (on the local platform, a loopback reverse proxy kiln runs).
// Its instances are never changed in place: a rollout replaces them.
type Service struct {
	Name        string `json:"name"`
	Image       string `json:"image"`
	Environment string `json:"environment"`
	Replicas    int    `json:"replicas"`
	// Listen is the front end's loopback address ("127.0.0.1:18080").
	Listen string `json:"listen"`
	// Port is the port the application listens on inside each instance.
	Port int `json:"port"`
	// Health is how an instance is checked: "http:/healthz" or "tcp".
	Health HealthCheck `json:"health"`
	// MaxSurge is how many new instances a rollout launches per batch.
	MaxSurge int `json:"max_surge"`
	// MinHealthyPercent of Replicas must serve at every moment of a rollout.
	MinHealthyPercent int `json:"min_healthy_percent"`
	// BakeTime is how long each batch is watched before old instances go.
	BakeTime time.Duration `json:"bake_time_ns"`
	// MaxErrorRate is the share of failed requests or checks during bake
	// (0.05 = 5%) above which a rollout rolls back.
	MaxErrorRate float64 `json:"max_error_rate"`
	// Version is what the service's instances run, zero before the first
	// rollout finished.
	Version VersionRef `json:"version,omitzero"`
	// Generation counts changes of the front end's backend set; the proxy
	// reports the generation it has applied, so removal waits for it.
	Generation int64     `json:"generation"`
	CreatedAt  time.Time `json:"created_at"`
	UpdatedAt  time.Time `json:"updated_at"`
}

// Service defaults.
const (
	DefaultMaxSurge          = 1
	DefaultMinHealthyPercent = 100
	DefaultBakeTime          = 5 * time.Second
	DefaultMaxErrorRate      = 0.01
)

var serviceNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// MinHealthy is the number of serving instances a rollout never goes below.
func (s *Service) MinHealthy() int {
	return (s.Replicas*s.MinHealthyPercent + 99) / 100
}

// Validate checks a service and fills in defaults.
func (s *Service) Validate() error {
	if !serviceNameRE.MatchString(s.Name) || strings.HasSuffix(s.Name, "-") {
		return FieldErrorf(EINVALID, "name", "service name %q is not allowed; use 1–63 lowercase letters, digits and dashes, starting with a letter (e.g. web)", s.Name)
	}
	if err := ValidateImageName(s.Image); err != nil {
		return FieldErrorf(EINVALID, "image", "image %q is not a valid image name; give the image line, e.g. --image appserver", s.Image)
	}
	if s.Environment == "" {
		return FieldErrorf(EINVALID, "env", "a service needs an environment; give --env, e.g. --env prod")
	}
	if err := validateName("env", s.Environment); err != nil {
		return err
	}
	if s.Replicas < 1 || s.Replicas > 1000 {
		return FieldErrorf(EINVALID, "replicas", "%d replicas: give 1 to 1000", s.Replicas)
	}
	ap, err := netip.ParseAddrPort(s.Listen)
	if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
		return FieldErrorf(EINVALID, "port", "front end address %q is not a loopback HOST:PORT with a port; write e.g. 127.0.0.1:18080", s.Listen)
	}
	if s.Port == 0 {
		s.Port = 80
	}
	if s.Port < 1 || s.Port > 65535 {
		return FieldErrorf(EINVALID, "instance-port", "instance port %d is not between 1 and 65535", s.Port)
	}
	if s.Health.Kind == "" {
		s.Health = HealthCheck{Kind: HealthTCP}
	}
	if err := s.Health.Validate("health"); err != nil {
		return err
	}
	if s.MaxSurge == 0 {
		s.MaxSurge = DefaultMaxSurge
	}
	if s.MaxSurge < 1 || s.MaxSurge > s.Replicas {
		return FieldErrorf(EINVALID, "max-surge", "max surge %d must be between 1 and the replica count %d", s.MaxSurge, s.Replicas)
	}
	if s.MinHealthyPercent == 0 {
		s.MinHealthyPercent = DefaultMinHealthyPercent
	}
	if s.MinHealthyPercent < 1 || s.MinHealthyPercent > 100 {
		return FieldErrorf(EINVALID, "min-healthy", "min healthy %d%% must be between 1 and 100", s.MinHealthyPercent)
	}
	if s.BakeTime < 0 {
		return FieldErrorf(EINVALID, "bake-time", "bake time %s is negative", s.BakeTime)
	}
	if s.MaxErrorRate == 0 {
		s.MaxErrorRate = DefaultMaxErrorRate
	}
	if s.MaxErrorRate < 0 || s.MaxErrorRate > 1 {
		return FieldErrorf(EINVALID, "max-error-rate", "max error rate %g must be between 0 and 1 (0.05 = 5%%)", s.MaxErrorRate)
	}
	return nil
}

// Health check kinds.
const (
	HealthHTTP = "http" // GET the path on the instance's port; 2xx and 3xx are healthy
	HealthTCP  = "tcp"  // the instance's port accepts a connection
)

// HealthCheck says how an instance of a service is found healthy.
type HealthCheck struct {
	Kind string `json:"kind"`
	Path string `json:"path,omitempty"`
}

func (h HealthCheck) String() string {
	if h.Kind == HealthHTTP {
		return "http:" + h.Path
	}
	return h.Kind
}

// Validate checks a health check.
func (h HealthCheck) Validate(field string) error {
	switch {
	case h.Kind == HealthTCP && h.Path == "":
		return nil
	case h.Kind == HealthHTTP && strings.HasPrefix(h.Path, "/") && !strings.ContainsAny(h.Path, " \t\r\n"):
		return nil
	}
	return FieldErrorf(EINVALID, field, "health check %q is not valid; write http:/PATH (e.g. http:/healthz) or tcp", h.String())
}

// ParseHealthCheck parses "http:/healthz" or "tcp".
func ParseHealthCheck(field, s string) (HealthCheck, error) {
	kind, path, _ := strings.Cut(s, ":")
	h := HealthCheck{Kind: kind, Path: path}
	return h, h.Validate(field)
}

// ParseListen parses a front end address: "127.0.0.1:18080" or a bare port.
func ParseListen(field, s string) (string, error) {
	if n, err := strconv.Atoi(s); err == nil {
		s = net.JoinHostPort("127.0.0.1", strconv.Itoa(n))
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 {
		return "", FieldErrorf(EINVALID, field, "%q is not a loopback HOST:PORT; the local front end listens on loopback only, e.g. 127.0.0.1:18080", s)
	}
	return ap.String(), nil
}

// MemberState is where an instance is in its service's front end.
type MemberState string

const (
	// MemberLaunching: recorded before the launch, so that an interrupted
	// rollout knows to destroy it; never in the front end.
	MemberLaunching MemberState = "launching"
	// MemberActive: healthy and in the front end's backend set.
	MemberActive MemberState = "active"
	// MemberDraining: out of the backend set, waiting for the front end to
	// stop sending to it before it is destroyed.
	MemberDraining MemberState = "draining"
)

// Member is one instance of a service.
type Member struct {
	Service    string      `json:"service"`
	InstanceID string      `json:"instance_id"`
	Version    VersionRef  `json:"version"`
	Address    string      `json:"address,omitempty"` // loopback forward to the instance's port
	State      MemberState `json:"state"`
	// Rollout is the rollout that launched it, 0 for none.
	Rollout   int64     `json:"rollout,omitempty"`
	UpdatedAt time.Time `json:"updated_at"`
}

// ProxyStatus is what a service's front end reports about itself.
type ProxyStatus struct {
	Service string `json:"service"`
	// Generation is the backend set the proxy serves; in-flight requests
	// to backends removed before it have finished.
	Generation int64     `json:"generation"`
	Backends   int       `json:"backends"`
	Requests   int64     `json:"requests"`
	Errors     int64     `json:"errors"` // answered 502 or 5xx from the backend
	PID        int       `json:"pid"`
	SeenAt     time.Time `json:"seen_at"`
}

// ServiceStore keeps services, their members and their front ends' reports.
// Member changes bump the service's Generation in the same transaction.
//
// Errors: EINVALID for a bad service, ECONFLICT for a name or front end
// address in use or a service that still has instances, ENOTFOUND for an
// unknown service.
type ServiceStore interface {
	CreateService(ctx context.Context, s *Service) error
	FindService(ctx context.Context, name string) (*Service, error)
	ListServices(ctx context.Context) ([]*Service, error)
	// SetServiceVersion records what the service runs after a rollout.
	SetServiceVersion(ctx context.Context, name string, v VersionRef) error
	DeleteService(ctx context.Context, name string) error

	ListMembers(ctx context.Context, service string) ([]*Member, error)
	// PutMember inserts or replaces a member.
	PutMember(ctx context.Context, m *Member) error
	DeleteMember(ctx context.Context, service, instanceID string) error

	ReportProxy(ctx context.Context, st *ProxyStatus) error
	// ProxyStatus returns ENOTFOUND when no proxy has reported.
	ProxyStatus(ctx context.Context, service string) (*ProxyStatus, error)
}

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
	StartedBy  string          `json:"started_by"`
	StartedAt  time.Time       `json:"started_at"`
	UpdatedAt  time.Time       `json:"updated_at"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
}

// BreakGlass records one opening of manual access to an instance.
type BreakGlass struct {
	ID         int64     `json:"id"`
	InstanceID string    `json:"instance_id"`
	Actor      string    `json:"actor"`
	Reason     string    `json:"reason"`
	Source     string    `json:"source"`
	At         time.Time `json:"at"`
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

// DriftKind says how a path differs from the image.
type DriftKind string

const (
	DriftAdded    DriftKind = "added"    // not in the image
	DriftChanged  DriftKind = "changed"  // in the image, content or metadata differ
	DriftDeleted  DriftKind = "deleted"  // in the image, removed (an overlay whiteout)
	DriftReplaced DriftKind = "replaced" // a directory of the image replaced as a whole (opaque)
)

// DriftEntry is one changed path or package.
type DriftEntry struct {
	Kind DriftKind `json:"kind"`
	Path string    `json:"path,omitempty"`
	// Package and the versions for a package change; From is empty for an
	// installed package, To for a removed one.
	Package string `json:"package,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// Drift is what an instance changed in itself since it was launched.
type Drift struct {
	InstanceID string       `json:"instance_id"`
	Version    VersionRef   `json:"version"`
	Tainted    bool         `json:"tainted,omitempty"`
	Files      []DriftEntry `json:"files"`
	Packages   []DriftEntry `json:"packages"`
	// Ignored counts changed paths under volatile locations (logs, journal).
	Ignored int `json:"ignored"`
}

// Drifted reports whether anything but volatile paths changed.
func (d *Drift) Drifted() bool { return len(d.Files) > 0 || len(d.Packages) > 0 }

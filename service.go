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
	// MaxSurge is how many instances a rollout may run above Replicas at
	// any moment; it is also the batch size unless BatchSize is set.
	MaxSurge int `json:"max_surge"`
	// BatchSize is how many new instances a rollout launches per batch (0:
	// MaxSurge). Above MaxSurge, old instances are removed before a batch
	// launches, never below MinHealthy serving.
	BatchSize int `json:"batch_size,omitempty"`
	// MinHealthyPercent of Replicas must serve at every moment of a rollout.
	MinHealthyPercent int `json:"min_healthy_percent"`
	// BakeTime is how long each batch is watched before old instances go.
	BakeTime time.Duration `json:"bake_time_ns"`
	// MaxErrorRate is the share of failed requests or checks during bake
	// (0.05 = 5%) above which a rollout rolls back.
	MaxErrorRate float64 `json:"max_error_rate"`
	// MetricsListen, when set, is a loopback address where the front end
	// serves /metrics (Prometheus text format): its request and error
	// counts, for a MetricGate's Prometheus to scrape. Empty: none.
	MetricsListen string `json:"metrics_listen,omitempty"`
	// Follow is FollowChannel (kiln serve rolls the service out when the
	// channel of its image in its environment moves) or FollowNone.
	Follow string `json:"follow"`
	// Followed is the channel version kiln serve last started a rollout
	// to (or found the service running): a channel move is a channel
	// version other than this one.
	Followed VersionRef `json:"followed,omitzero"`
	// Policy limits the rollouts kiln serve starts and gates every rollout.
	Policy RolloutPolicy `json:"policy,omitzero"`
	// Pending is a rollout kiln serve's autopilot decided on and its
	// Policy holds back (outside the window, over the limit); nil when
	// none waits. It is moot once the service runs its version.
	Pending *PendingRollout `json:"pending,omitempty"`
	// Estate names the registered estate whose service block defines the
	// service ("" for one created with `kiln service create`).
	Estate string `json:"estate,omitempty"`
	// Platform is where its instances run (LaunchPlatforms); empty is the
	// default, local.
	Platform string `json:"platform,omitempty"`
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

// Batch is the number of new instances a rollout launches per batch.
func (s *Service) Batch() int {
	if s.BatchSize > 0 {
		return s.BatchSize
	}
	return s.MaxSurge
}

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
	if err := ValidatePlatform("platform", s.Platform); err != nil {
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
	if s.BatchSize < 0 || s.BatchSize > s.Replicas {
		return FieldErrorf(EINVALID, "batch-size", "batch size %d must be between 1 and the replica count %d (0: the max surge)", s.BatchSize, s.Replicas)
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
	if s.MetricsListen != "" {
		ap, err := netip.ParseAddrPort(s.MetricsListen)
		if err != nil || !ap.Addr().IsLoopback() || ap.Port() == 0 || s.MetricsListen == s.Listen {
			return FieldErrorf(EINVALID, "metrics-port", "metrics address %q is not a loopback HOST:PORT other than the front end's %s; write e.g. 127.0.0.1:19080", s.MetricsListen, s.Listen)
		}
	}
	switch s.Follow {
	case "":
		s.Follow = FollowChannel
	case FollowChannel, FollowNone:
	default:
		return FieldErrorf(EINVALID, "follow", "follow %q is not known; give channel (kiln serve rolls the service when %s's channel in %s moves) or none", s.Follow, s.Image, s.Environment)
	}
	return s.Policy.Validate()
}

// PendingRollout is a rollout kiln serve's autopilot decided on (a
// refresh for an advisory) and has not started because the service's
// RolloutPolicy does not let it yet: the autopilot starts it at its first
// check after the window opens or the limit frees.
type PendingRollout struct {
	To VersionRef `json:"to"`
	// Why says what decided it: "refresh for OSV-DEMO-1".
	Why string `json:"why"`
	// By is the actor that will start it ("autopilot").
	By    string    `json:"by"`
	Since time.Time `json:"since"`
}

// Following reports whether kiln serve rolls the service out when its
// channel moves.
func (s *Service) Following() bool { return s.Follow == FollowChannel }

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
	// UpdateService replaces what may change of a recorded service: its
	// rollout settings (surge, minimum healthy, bake time, error rate),
	// metrics address, follow mode, policy and estate. Name, image,
	// environment, replicas, front end and health stay as created.
	UpdateService(ctx context.Context, s *Service) error
	// SetServiceFollowed records the channel version kiln serve acted on.
	SetServiceFollowed(ctx context.Context, name string, v VersionRef) error
	// SetServicePending records the rollout the autopilot holds back for
	// the service's policy; nil clears it.
	SetServicePending(ctx context.Context, name string, p *PendingRollout) error
	DeleteService(ctx context.Context, name string) error

	ListMembers(ctx context.Context, service string) ([]*Member, error)
	// PutMember inserts or replaces a member.
	PutMember(ctx context.Context, m *Member) error
	DeleteMember(ctx context.Context, service, instanceID string) error

	ReportProxy(ctx context.Context, st *ProxyStatus) error
	// ProxyStatus returns ENOTFOUND when no proxy has reported.
	ProxyStatus(ctx context.Context, service string) (*ProxyStatus, error)
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

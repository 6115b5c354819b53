package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

// The autopilot's routes: pausing and resuming kiln serve's automatic
// work on a service or an environment (`kiln service pause|resume`, `kiln
// env pause|resume|pauses`), and a service's follow mode, rollout policy
// and rollout settings (`kiln service show|set`). The stores validate and
// audit as they do for the CLI; a refused field is named as the API's
// (body.window, path.environment).

type pauseBody struct {
	Reason string `json:"reason" maxLength:"1024" example:"CHG-42: freeze for the release" doc:"why the autopilot stops (3 to 1024 bytes); recorded with the caller's name"`
}

type servicePauseIn struct {
	Service string `path:"service" maxLength:"63" pattern:"^[a-z][a-z0-9-]{0,62}$" example:"web"`
	Body    pauseBody
}

type envPath struct {
	Environment string `path:"environment" maxLength:"32" pattern:"^[a-z][a-z0-9-]{0,31}$" example:"prod"`
}

type envPauseIn struct {
	Environment string `path:"environment" maxLength:"32" pattern:"^[a-z][a-z0-9-]{0,31}$" example:"prod"`
	Body        pauseBody
}

type pauseOut struct{ Body *kiln.Pause }

type pausesOut struct {
	Body struct {
		Pauses []*kiln.Pause `json:"pauses"`
	}
}

// ServicePolicy is a service's follow mode, rollout policy and rollout
// settings, with its pause: what `kiln service show` prints of them.
type ServicePolicy struct {
	Service string `json:"service"`
	// Follow is channel (kiln serve rolls the service out when its
	// image's channel in its environment moves) or none.
	Follow      string             `json:"follow" enum:"channel,none"`
	Image       string             `json:"image"`
	Environment string             `json:"environment"`
	Policy      kiln.RolloutPolicy `json:"policy"`
	// BatchSize is the effective batch (the max surge when not set).
	BatchSize         int           `json:"batch_size"`
	MaxSurge          int           `json:"max_surge"`
	MinHealthyPercent int           `json:"min_healthy_percent"`
	BakeTime          time.Duration `json:"bake_time_ns"`
	MaxErrorRate      float64       `json:"max_error_rate"`
	MetricsListen     string        `json:"metrics_listen,omitempty"`
	// Estate names the estate that defines the service (`kiln estate
	// apply` puts its block's policy back).
	Estate string `json:"estate,omitempty"`
	// Pause is the service's pause, when the autopilot is stopped for it.
	Pause *kiln.Pause `json:"pause,omitempty"`
	// EnvironmentPause is its environment's pause, when there is one.
	EnvironmentPause *kiln.Pause `json:"environment_pause,omitempty"`
	// Status is what kiln serve's follower does for the service now (as
	// `kiln service show` prints it); absent on a server without one.
	Status *FollowState `json:"status,omitempty"`
}

// FollowState is what kiln serve's follower does for a service now
// (rollout.FollowStatus, which cmd/kiln converts).
type FollowState struct {
	State string `json:"state" doc:"not-following, no-channel, up-to-date, rolling-out, held, waiting-window, waiting-limit, due, paused or pending (the autopilot's held-back rollout may start at its next check); a wait is the follower's for a channel move or the autopilot's for the rollout it holds back, as detail says"`
	// Detail explains State in a sentence.
	Detail string `json:"detail"`
	// Channel is the version the environment's channel points at.
	Channel string `json:"channel,omitempty" example:"appserver-4"`
	// Until is when a wait ends (the window opens, the limit frees).
	Until time.Time `json:"until,omitzero"`
	// NextWindow is when the update window next opens (now when open).
	NextWindow time.Time `json:"next_window,omitzero"`
}

type servicePolicyOut struct{ Body *ServicePolicy }

// gatePatch is a metric gate's fields to change; the others stay (a
// service without a gate gets one from the fields given).
type gatePatch struct {
	Prometheus *string        `json:"prometheus,omitempty" maxLength:"512" example:"http://127.0.0.1:9090"`
	Query      *string        `json:"query,omitempty" maxLength:"4096"`
	Max        *float64       `json:"max,omitempty"`
	For        *time.Duration `json:"for_ns,omitempty" doc:"nanoseconds the query must stay at or under max after each batch"`
}

type servicePolicySetIn struct {
	Service string `path:"service" maxLength:"63" pattern:"^[a-z][a-z0-9-]{0,62}$" example:"web"`
	Body    struct {
		Follow *string    `json:"follow,omitempty" enum:"channel,none"`
		Window *string    `json:"window,omitempty" maxLength:"128" example:"mon-fri 02:00-05:00 Europe/Berlin" doc:"update window DAYS HH:MM-HH:MM ZONE, as kiln service set --window"`
		Limit  *string    `json:"limit,omitempty" maxLength:"32" example:"2/24h" doc:"at most N rollouts per period in the environment: N/DURATION, as --limit"`
		Gate   *gatePatch `json:"gate,omitempty" doc:"metric gate fields to set (the others stay)"`
		// Remove names what to take away, as --no-window, --no-limit,
		// --no-gate and --no-metrics-port.
		Remove            []string       `json:"remove,omitempty" maxItems:"4" enum:"window,limit,gate,metrics_listen"`
		MetricsListen     *string        `json:"metrics_listen,omitempty" maxLength:"64" doc:"loopback address (or port) where the front end serves /metrics"`
		MaxSurge          *int           `json:"max_surge,omitempty"`
		BatchSize         *int           `json:"batch_size,omitempty" doc:"new instances per batch (0: max_surge)"`
		MinHealthyPercent *int           `json:"min_healthy_percent,omitempty"`
		BakeTime          *time.Duration `json:"bake_time_ns,omitempty" doc:"nanoseconds each batch is watched"`
		MaxErrorRate      *float64       `json:"max_error_rate,omitempty"`
	}
}

// serviceFields are the API's names of the fields kiln.Service.Validate
// names by their CLI flags.
var serviceFields = map[string]string{
	"max-surge": "body.max_surge", "batch-size": "body.batch_size", "min-healthy": "body.min_healthy_percent",
	"bake-time": "body.bake_time_ns", "max-error-rate": "body.max_error_rate", "metrics-port": "body.metrics_listen",
	"follow": "body.follow", "window": "body.window", "limit": "body.limit", "gate.for": "body.gate.for_ns",
}

// apiField renames the field of a validation error to the API's.
func apiField(err error, names map[string]string) error {
	var ke *kiln.Error
	if errors.As(err, &ke) && ke.Field != "" {
		cp := *ke
		if n, ok := names[ke.Field]; ok {
			cp.Field = n
		} else if strings.HasPrefix(ke.Field, "gate.") {
			cp.Field = "body." + ke.Field
		}
		return &cp
	}
	return err
}

// registerAutopilot adds the pause and service policy routes when the
// configuration gives a pause store (and the service store for a
// service's).
func (s *Server) registerAutopilot() {
	ps, ss := s.cfg.Pauses, s.cfg.ServiceStore
	if ps == nil {
		return
	}
	pause := func(ctx context.Context, kind kiln.PauseKind, name, reason string) (*pauseOut, error) {
		p := &kiln.Pause{Kind: kind, Name: name, Reason: reason}
		if err := ps.Pause(ctx, p); err != nil {
			return nil, apiField(err, map[string]string{"reason": "body.reason", "name": "path." + string(kind)})
		}
		return &pauseOut{Body: p}, nil
	}
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-pauses", Method: http.MethodGet, Path: "/api/v1/pauses",
		Summary: "The services and environments kiln serve's autopilot leaves alone, with who paused them, when and why", Tags: []string{"autopilot"},
	}, func(ctx context.Context, _ *struct{}) (*pausesOut, error) {
		list, err := ps.ListPauses(ctx)
		if err != nil {
			return nil, err
		}
		out := &pausesOut{}
		out.Body.Pauses = nonNil(list)
		return out, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "pause-environment", Method: http.MethodPost, Path: "/api/v1/environments/{environment}/pause",
		Summary: "Stop every automatic refresh in an environment until resumed (recorded with the caller and reason; pausing again replaces the reason)", Tags: []string{"autopilot"},
	}, func(ctx context.Context, in *envPauseIn) (*pauseOut, error) {
		return pause(ctx, kiln.PauseEnvironment, in.Environment, in.Body.Reason)
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "resume-environment", Method: http.MethodDelete, Path: "/api/v1/environments/{environment}/pause",
		Summary: "Let kiln serve's autopilot act on the environment again", Tags: []string{"autopilot"},
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *envPath) (*struct{}, error) {
		return nil, ps.Resume(ctx, kiln.PauseEnvironment, in.Environment)
	})
	if ss == nil {
		return
	}
	register(s, RoleOperator, huma.Operation{
		OperationID: "pause-service", Method: http.MethodPost, Path: "/api/v1/services/{service}/pause",
		Summary: "Stop the autopilot's rollouts and refreshes of a service until resumed (rollouts a person asks for still run)", Tags: []string{"autopilot"},
	}, func(ctx context.Context, in *servicePauseIn) (*pauseOut, error) {
		if _, err := ss.FindService(ctx, in.Service); err != nil {
			return nil, err
		}
		return pause(ctx, kiln.PauseService, in.Service, in.Body.Reason)
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "resume-service", Method: http.MethodDelete, Path: "/api/v1/services/{service}/pause",
		Summary: "Let kiln serve's autopilot act on the service again", Tags: []string{"autopilot"},
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *servicePath) (*struct{}, error) {
		return nil, ps.Resume(ctx, kiln.PauseService, in.Service)
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-service-policy", Method: http.MethodGet, Path: "/api/v1/services/{service}/policy",
		Summary: "A service's follow mode, rollout policy (window, limit, metric gate), rollout settings and pause", Tags: []string{"autopilot"},
	}, func(ctx context.Context, in *servicePath) (*servicePolicyOut, error) {
		svc, err := ss.FindService(ctx, in.Service)
		if err != nil {
			return nil, err
		}
		return s.servicePolicy(ctx, svc)
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "set-service-policy", Method: http.MethodPatch, Path: "/api/v1/services/{service}/policy",
		Summary: "Change a service's follow mode, rollout policy and rollout settings (what is not given stays; remove takes a window, limit, gate or metrics address away)", Tags: []string{"autopilot"},
	}, func(ctx context.Context, in *servicePolicySetIn) (*servicePolicyOut, error) {
		svc, err := ss.FindService(ctx, in.Service)
		if err != nil {
			return nil, err
		}
		if err := applyPolicy(svc, in); err != nil {
			return nil, err
		}
		if err := ss.UpdateService(ctx, svc); err != nil {
			return nil, apiField(err, serviceFields)
		}
		return s.servicePolicy(ctx, svc)
	})
}

// applyPolicy sets on svc what the request gives, parsed as the CLI's
// flags are.
func applyPolicy(svc *kiln.Service, in *servicePolicySetIn) error {
	b := in.Body
	var err error
	if b.Follow != nil {
		svc.Follow = *b.Follow
	}
	if b.Window != nil {
		if svc.Policy.Window, err = kiln.ParseUpdateWindow("body.window", *b.Window); err != nil {
			return err
		}
	}
	if b.Limit != nil {
		if svc.Policy.Limit, err = kiln.ParseRolloutLimit("body.limit", *b.Limit); err != nil {
			return err
		}
	}
	if b.MetricsListen != nil {
		if svc.MetricsListen, err = kiln.ParseListen("body.metrics_listen", *b.MetricsListen); err != nil {
			return err
		}
	}
	if g := b.Gate; g != nil {
		gate := kiln.MetricGate{}
		if svc.Policy.Gate != nil {
			gate = *svc.Policy.Gate
		}
		if g.Prometheus != nil {
			gate.Prometheus = *g.Prometheus
		}
		if g.Query != nil {
			gate.Query = *g.Query
		}
		if g.Max != nil {
			gate.Max = *g.Max
		}
		if g.For != nil {
			gate.For = *g.For
		}
		if err := gate.Validate(); err != nil {
			return apiField(err, serviceFields)
		}
		svc.Policy.Gate = &gate
	}
	for _, r := range b.Remove {
		switch r {
		case "window":
			svc.Policy.Window = nil
		case "limit":
			svc.Policy.Limit = nil
		case "gate":
			svc.Policy.Gate = nil
		case "metrics_listen":
			svc.MetricsListen = ""
		}
	}
	if b.MaxSurge != nil {
		svc.MaxSurge = *b.MaxSurge
	}
	if b.BatchSize != nil {
		svc.BatchSize = *b.BatchSize
	}
	if b.MinHealthyPercent != nil {
		svc.MinHealthyPercent = *b.MinHealthyPercent
	}
	if b.BakeTime != nil {
		svc.BakeTime = *b.BakeTime
	}
	if b.MaxErrorRate != nil {
		svc.MaxErrorRate = *b.MaxErrorRate
	}
	return nil
}

func (s *Server) servicePolicy(ctx context.Context, svc *kiln.Service) (*servicePolicyOut, error) {
	p := &ServicePolicy{Service: svc.Name, Follow: svc.Follow, Image: svc.Image, Environment: svc.Environment, Policy: svc.Policy,
		BatchSize: svc.Batch(), MaxSurge: svc.MaxSurge, MinHealthyPercent: svc.MinHealthy(), BakeTime: svc.BakeTime,
		MaxErrorRate: svc.MaxErrorRate, MetricsListen: svc.MetricsListen, Estate: svc.Estate}
	var err error
	if p.Pause, err = s.findPause(ctx, kiln.PauseService, svc.Name); err != nil {
		return nil, err
	}
	if p.EnvironmentPause, err = s.findPause(ctx, kiln.PauseEnvironment, svc.Environment); err != nil {
		return nil, err
	}
	if s.cfg.FollowStatus != nil {
		if p.Status, err = s.cfg.FollowStatus(ctx, svc); err != nil {
			return nil, err
		}
	}
	return &servicePolicyOut{Body: p}, nil
}

// findPause is the pause of kind and name, nil when there is none.
func (s *Server) findPause(ctx context.Context, kind kiln.PauseKind, name string) (*kiln.Pause, error) {
	p, err := s.cfg.Pauses.FindPause(ctx, kind, name)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return nil, nil
	}
	return p, err
}

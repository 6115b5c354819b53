package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

// RolloutHost runs rollouts and services' front ends on the server's
// machine (rollout.Host in the background, wired by kiln serve). Without
// one, the routes that need it answer 503 saying where to run the command.
type RolloutHost interface {
	kiln.RolloutStarter
	kiln.ServiceHost
}

type servicesOut struct {
	Body struct {
		Services []*kiln.Service `json:"services"`
	}
}

type serviceOut struct {
	Body struct {
		Service  *kiln.Service     `json:"service"`
		Members  []*kiln.Member    `json:"members"`
		FrontEnd *kiln.ProxyStatus `json:"front_end,omitempty"`
		Rollouts []*kiln.Rollout   `json:"rollouts"`
	}
}

type servicePath struct {
	Service string `path:"service" maxLength:"63" pattern:"^[a-z][a-z0-9-]{0,62}$" example:"web"`
}

type serviceCreateIn struct {
	Body struct {
		Name        string `json:"name" maxLength:"63" example:"web"`
		Image       string `json:"image" maxLength:"63" example:"appserver"`
		Environment string `json:"environment" maxLength:"32" example:"prod"`
		Replicas    int    `json:"replicas" example:"4"`
		// Listen is the front end's loopback address on the server's machine.
		Listen            string              `json:"listen" maxLength:"64" example:"127.0.0.1:18080"`
		Port              int                 `json:"port,omitempty" doc:"port the application listens on inside each instance (default 80)"`
		Health            *kiln.HealthCheck   `json:"health,omitempty" doc:"default: tcp"`
		MaxSurge          int                 `json:"max_surge,omitempty"`
		BatchSize         int                 `json:"batch_size,omitempty" doc:"new instances per batch (default: max_surge)"`
		MinHealthyPercent int                 `json:"min_healthy_percent,omitempty"`
		BakeTime          time.Duration       `json:"bake_time_ns,omitempty" doc:"nanoseconds (default 5s)"`
		MaxErrorRate      float64             `json:"max_error_rate,omitempty"`
		MetricsListen     string              `json:"metrics_listen,omitempty" maxLength:"64" doc:"loopback address where the front end serves /metrics"`
		Follow            string              `json:"follow,omitempty" enum:"channel,none" doc:"channel (default): kiln serve rolls the service out when its channel moves; none: only explicit rollouts"`
		Policy            *kiln.RolloutPolicy `json:"policy,omitempty" doc:"update window, rollout limit and metric gate (docs/rollout.md)"`
		Platform          string              `json:"platform,omitempty" enum:"local,vm" doc:"where its instances run (default local)"`
	}
}

type serviceCreateOut struct {
	Body *kiln.Service
}

type serviceDeleteIn struct {
	Service string `path:"service" maxLength:"63" pattern:"^[a-z][a-z0-9-]{0,62}$"`
	Destroy bool   `query:"destroy_instances" doc:"destroy the service's instances first (it serves nothing after)"`
}

type serviceDeleteOut struct {
	Body struct {
		Destroyed []string `json:"destroyed"`
	}
}

type frontEndOut struct {
	Body struct {
		Running bool              `json:"running" doc:"the front end runs on the server's machine (always false from a server that runs no front ends: it cannot tell)"`
		Status  *kiln.ProxyStatus `json:"status,omitempty" doc:"the front end's last report"`
	}
}

type rolloutStartIn struct {
	Service string `path:"service" maxLength:"63" pattern:"^[a-z][a-z0-9-]{0,62}$"`
	Body    struct {
		To           string `json:"to,omitempty" maxLength:"80" example:"appserver-4" doc:"version IMAGE-N (default: the environment's channel version, else the latest ready)"`
		AllowUnready bool   `json:"allow_unready,omitempty" doc:"allow a tested version that is not ready yet"`
		Resume       bool   `json:"resume,omitempty" doc:"continue the service's interrupted rollout instead"`
	}
}

type rolloutOut struct{ Body *kiln.Rollout }

type rolloutGetIn struct {
	ID    int64 `path:"id" minimum:"1" example:"7"`
	After int   `query:"after" minimum:"0" doc:"return progress lines from this one on (for following a rollout)"`
}

type rolloutGetOut struct{ Body *kiln.RolloutProgress }

// registerRollout adds the service and rollout operations when the
// configuration gives the service and rollout stores. Rollouts take minutes and own
// instances: the server runs them in the background (Config.Rollouts) and
// answers 202 at once; GET /api/v1/rollouts/{id} follows them.
func (s *Server) registerRollout() {
	ss, rs := s.cfg.ServiceStore, s.cfg.RolloutStore
	if ss == nil || rs == nil {
		return
	}
	host := func(what string) (RolloutHost, error) {
		if s.cfg.Rollouts == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln server does not %s: it runs no rollouts (its kiln serve --work leaves them out, or its machine has no platform: that needs root and systemd-nspawn); point --server at the kiln serve that runs rollouts (its log says so at start), or run the command on that machine without --server", what)
		}
		return s.cfg.Rollouts, nil
	}
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-services", Method: http.MethodGet, Path: "/api/v1/services",
		Summary: "List services", Tags: []string{"rollout"},
	}, func(ctx context.Context, _ *struct{}) (*servicesOut, error) {
		list, err := ss.ListServices(ctx)
		if err != nil {
			return nil, err
		}
		out := &servicesOut{}
		out.Body.Services = nonNil(list)
		return out, nil
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-service", Method: http.MethodGet, Path: "/api/v1/services/{service}",
		Summary: "A service with its instances, front end and last rollouts", Tags: []string{"rollout"},
	}, func(ctx context.Context, in *struct {
		Service string `path:"service" maxLength:"63"`
		Limit   int    `query:"rollouts" minimum:"0" maximum:"1000" default:"10"`
	}) (*serviceOut, error) {
		svc, err := ss.FindService(ctx, in.Service)
		if err != nil {
			return nil, err
		}
		out := &serviceOut{}
		out.Body.Service = svc
		if out.Body.Members, err = ss.ListMembers(ctx, in.Service); err != nil {
			return nil, err
		}
		if out.Body.Rollouts, err = rs.ListRollouts(ctx, in.Service, in.Limit); err != nil {
			return nil, err
		}
		out.Body.Members, out.Body.Rollouts = nonNil(out.Body.Members), nonNil(out.Body.Rollouts)
		if st, err := ss.ProxyStatus(ctx, in.Service); err == nil {
			out.Body.FrontEnd = st
		}
		return out, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "create-service", Method: http.MethodPost, Path: "/api/v1/services",
		Summary: "Define a service (its front end starts with POST …/front-end, its instances with a rollout)", Tags: []string{"rollout"},
		DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound}, // names a version / an image
	}, func(ctx context.Context, in *serviceCreateIn) (*serviceCreateOut, error) {
		b := in.Body
		svc := &kiln.Service{Name: b.Name, Image: b.Image, Environment: b.Environment, Replicas: b.Replicas, Listen: b.Listen, Port: b.Port,
			MaxSurge: b.MaxSurge, MinHealthyPercent: b.MinHealthyPercent, BakeTime: b.BakeTime, MaxErrorRate: b.MaxErrorRate,
			MetricsListen: b.MetricsListen, Follow: b.Follow, BatchSize: b.BatchSize, Platform: b.Platform}
		if b.Policy != nil {
			svc.Policy = *b.Policy
		}
		if b.Health != nil {
			svc.Health = *b.Health
		}
		if err := ss.CreateService(ctx, svc); err != nil {
			return nil, bodyField(err, "")
		}
		return &serviceCreateOut{Body: svc}, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "delete-service", Method: http.MethodDelete, Path: "/api/v1/services/{service}",
		Summary: "Delete a service and stop its front end (destroy_instances=true destroys its instances first)", Tags: []string{"rollout"},
	}, func(ctx context.Context, in *serviceDeleteIn) (*serviceDeleteOut, error) {
		h, err := host("delete services")
		if err != nil {
			return nil, err
		}
		destroyed, err := h.RemoveService(ctx, in.Service, in.Destroy)
		if err != nil {
			return nil, err
		}
		out := &serviceDeleteOut{}
		out.Body.Destroyed = nonNil(destroyed)
		return out, nil
	})
	frontEnd := func(ctx context.Context, h RolloutHost, service string) (*frontEndOut, error) {
		out := &frontEndOut{}
		var err error
		if out.Body.Running, err = h.FrontEndRunning(ctx, service); err != nil {
			return nil, err
		}
		if st, err := ss.ProxyStatus(ctx, service); err == nil {
			out.Body.Status = st
		}
		return out, nil
	}
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-front-end", Method: http.MethodGet, Path: "/api/v1/services/{service}/front-end",
		Summary: "Whether a service's front end runs, with its last report", Tags: []string{"rollout"},
	}, func(ctx context.Context, in *servicePath) (*frontEndOut, error) {
		if _, err := ss.FindService(ctx, in.Service); err != nil {
			return nil, err
		}
		if s.cfg.Rollouts == nil {
			// A server that runs no front ends cannot tell whether one
			// runs: running is false, with the last report the front end
			// sent to the database, so `kiln service list|show` work.
			out := &frontEndOut{}
			if st, err := ss.ProxyStatus(ctx, in.Service); err == nil {
				out.Body.Status = st
			}
			return out, nil
		}
		return frontEnd(ctx, s.cfg.Rollouts, in.Service)
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "start-front-end", Method: http.MethodPost, Path: "/api/v1/services/{service}/front-end",
		Summary: "Start a service's front end on the server's machine unless it runs", Tags: []string{"rollout"},
	}, func(ctx context.Context, in *servicePath) (*frontEndOut, error) {
		h, err := host("run front ends")
		if err != nil {
			return nil, err
		}
		if err := h.StartFrontEnd(ctx, in.Service); err != nil {
			return nil, err
		}
		return frontEnd(ctx, h, in.Service)
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "stop-front-end", Method: http.MethodDelete, Path: "/api/v1/services/{service}/front-end",
		Summary: "Stop a service's front end (its instances keep running)", Tags: []string{"rollout"},
	}, func(ctx context.Context, in *servicePath) (*frontEndOut, error) {
		h, err := host("run front ends")
		if err != nil {
			return nil, err
		}
		if err := h.StopFrontEnd(ctx, in.Service); err != nil {
			return nil, err
		}
		return frontEnd(ctx, h, in.Service)
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "start-rollout", Method: http.MethodPost, Path: "/api/v1/services/{service}/rollouts",
		Summary: "Start (or resume) a rollout of a service; it runs on the server, follow it with GET /api/v1/rollouts/{id}", Tags: []string{"rollout"},
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *rolloutStartIn) (*rolloutOut, error) {
		req := kiln.RolloutRequest{Service: in.Service, AllowUnready: in.Body.AllowUnready, Resume: in.Body.Resume}
		if in.Body.To != "" {
			ref, err := kiln.ParseVersionRef("body.to", in.Body.To)
			if err != nil {
				return nil, err
			}
			req.To = ref
		}
		h, err := host("run rollouts")
		if err != nil {
			return nil, err
		}
		r, err := h.StartRollout(ctx, req)
		if err != nil {
			return nil, bodyField(err, "")
		}
		return &rolloutOut{Body: r}, nil
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-rollout", Method: http.MethodGet, Path: "/api/v1/rollouts/{id}",
		Summary: "A rollout with its progress lines (running: the server runs it now)", Tags: []string{"rollout"},
	}, func(ctx context.Context, in *rolloutGetIn) (*rolloutGetOut, error) {
		if s.cfg.Rollouts != nil {
			p, err := s.cfg.Rollouts.RolloutProgress(ctx, in.ID, in.After)
			if err != nil {
				return nil, err
			}
			return &rolloutGetOut{Body: p}, nil
		}
		r, err := rs.FindRollout(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &rolloutGetOut{Body: &kiln.RolloutProgress{Rollout: r, Lines: []string{}, Next: in.After}}, nil
	})
}

package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

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

// registerRollout adds the read-only service and rollout operations when
// the registry's database keeps services. Rollouts themselves run from the
// CLI (they take minutes and own instances), not from a request.
func (s *Server) registerRollout() {
	ss, ok1 := s.cfg.Registry.(kiln.ServiceStore)
	rs, ok2 := s.cfg.Registry.(kiln.RolloutStore)
	if !ok1 || !ok2 {
		return
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
		out.Body.Services = list
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
		if st, err := ss.ProxyStatus(ctx, in.Service); err == nil {
			out.Body.FrontEnd = st
		}
		return out, nil
	})
}

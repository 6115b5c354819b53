package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type policiesOut struct {
	Body struct {
		Policies []*kiln.AgePolicy `json:"policies"`
	}
}

type policyPath struct {
	Environment string `path:"environment" minLength:"1" maxLength:"255" example:"prod"`
}

type policySetIn struct {
	Environment string `path:"environment" minLength:"1" maxLength:"255" example:"prod"`
	Body        struct {
		// Checked in the handler, so that a missing limit is refused
		// naming this field as a zero one is.
		MaxAge int64 `json:"max_age_seconds,omitempty" doc:"required, ≥ 1: no instance in the environment may run a version built longer ago than this" example:"7776000"`
	}
}

type policyOut struct{ Body *kiln.AgePolicy }

// registerPolicies adds the age policy operations. Reading them is a
// viewer's; changing them is an admin's (docs/security.md: admin manages
// tokens and policies), since a policy decides what every report flags.
func (s *Server) registerPolicies(fl kiln.Fleet) {
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-age-policies", Method: http.MethodGet, Path: "/api/v1/fleet/policies",
		Summary: "Age limits per environment", Tags: []string{"fleet"},
	}, func(ctx context.Context, _ *struct{}) (*policiesOut, error) {
		ps, err := fl.AgePolicies(ctx)
		if err != nil {
			return nil, err
		}
		out := &policiesOut{}
		out.Body.Policies = nonNil(ps)
		return out, nil
	})

	register(s, RoleAdmin, huma.Operation{
		OperationID: "set-age-policy", Method: http.MethodPut, Path: "/api/v1/fleet/policies/{environment}",
		Summary: "Set or replace an environment's age limit", Tags: []string{"fleet"},
	}, func(ctx context.Context, in *policySetIn) (*policyOut, error) {
		if in.Body.MaxAge < 1 {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "body.max_age_seconds", "give the age limit in seconds, at least 1 (90 days is 7776000)")
		}
		p := &kiln.AgePolicy{Environment: in.Environment, MaxAge: kiln.Age(in.Body.MaxAge)}
		if err := fl.SetAgePolicy(ctx, p); err != nil {
			return nil, err
		}
		return &policyOut{Body: p}, nil
	})

	register(s, RoleAdmin, huma.Operation{
		OperationID: "delete-age-policy", Method: http.MethodDelete, Path: "/api/v1/fleet/policies/{environment}",
		Summary: "Remove an environment's age limit", Tags: []string{"fleet"}, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *policyPath) (*struct{}, error) {
		return nil, fl.DeleteAgePolicy(ctx, in.Environment)
	})
}

package api_test

import "testing"

// Age policies are set, listed and removed over the API, with errors that
// name the field or the environment.
func TestAgePoliciesOverHTTP(t *testing.T) {
	ts, _ := storeServer(t)
	runCases(t, ts, []apiCase{
		{name: "set", method: "PUT", path: "/api/v1/fleet/policies/prod", body: `{"max_age_seconds":7776000}`, status: 200,
			check: func(t *testing.T, m map[string]any) {
				if m["environment"] != "prod" || m["max_age_seconds"] != float64(7776000) || m["updated_by"] != "token:test-admin" {
					t.Errorf("set: %v", m)
				}
			}},
		{name: "replace", method: "PUT", path: "/api/v1/fleet/policies/prod", body: `{"max_age_seconds":86400}`, status: 200},
		{name: "list", method: "GET", path: "/api/v1/fleet/policies", status: 200,
			check: func(t *testing.T, m map[string]any) {
				ps := list(t, m, "policies")
				if len(ps) != 1 || ps[0]["max_age_seconds"] != float64(86400) {
					t.Errorf("policies: %v", ps)
				}
			}},
		{name: "zero age", method: "PUT", path: "/api/v1/fleet/policies/prod", body: `{"max_age_seconds":0}`, status: 400, code: "invalid", field: "body.max_age_seconds"},
		{name: "no age", method: "PUT", path: "/api/v1/fleet/policies/prod", body: `{}`, status: 400, code: "invalid", field: "body.max_age_seconds"},
		{name: "unknown field", method: "PUT", path: "/api/v1/fleet/policies/prod", body: `{"max_age_seconds":1,"max_age":"90d"}`, status: 400, code: "invalid", field: "body.max_age"},
		{name: "delete", method: "DELETE", path: "/api/v1/fleet/policies/prod", status: 204},
		{name: "delete again", method: "DELETE", path: "/api/v1/fleet/policies/prod", status: 404, code: "not_found", says: `"prod"`},
		{name: "empty list", method: "GET", path: "/api/v1/fleet/policies", status: 200,
			check: func(t *testing.T, m map[string]any) {
				if ps := list(t, m, "policies"); len(ps) != 0 {
					t.Errorf("policies after delete: %v", ps)
				}
			}},
	})
}

package api_test

import (
	"strings"
	"testing"
)

// Webhooks are added, listed (never with their secret) and removed; bad
// input is refused with the domain's message and the body field.
func TestWebhooksOverHTTP(t *testing.T) {
	ts, _ := storeServer(t)
	secret := strings.Repeat("s3cret", 6)
	noSecret := func(t *testing.T, m map[string]any) {
		for k, v := range m {
			if s, _ := v.(string); strings.Contains(s, secret) || k == "secret" {
				t.Errorf("the secret is in the answer: %v", m)
			}
		}
	}
	runCases(t, ts, []apiCase{
		{name: "add", method: "POST", path: "/api/v1/webhooks", body: `{"url":"https://ci.example.com/hook","secret":"` + secret + `","events":["ready","promoted"]}`,
			status: 201, check: func(t *testing.T, m map[string]any) {
				noSecret(t, m)
				if m["id"] != float64(1) || m["created_by"] != "token:test-admin" || len(m["events"].([]any)) != 2 {
					t.Errorf("added: %v", m)
				}
			}},
		{name: "list", method: "GET", path: "/api/v1/webhooks", status: 200, check: func(t *testing.T, m map[string]any) {
			ws := list(t, m, "webhooks")
			// The URL may hold a credential: only its scheme and host show.
			if len(ws) != 1 || ws[0]["endpoint"] != "https://ci.example.com" || ws[0]["url"] != nil {
				t.Errorf("webhooks: %v", ws)
			}
			for _, w := range ws {
				noSecret(t, w)
			}
		}},
		{name: "short secret", method: "POST", path: "/api/v1/webhooks", body: `{"url":"https://x.example","secret":"short","events":["ready"]}`,
			status: 400, code: "invalid", field: "body.secret", says: "at least 16"},
		{name: "bad url", method: "POST", path: "/api/v1/webhooks", body: `{"url":"ftp://x","secret":"` + secret + `","events":["ready"]}`,
			status: 400, code: "invalid", field: "body.url", says: "http(s) URL"},
		{name: "bad event", method: "POST", path: "/api/v1/webhooks", body: `{"url":"https://x.example","secret":"` + secret + `","events":["built"]}`,
			status: 400, code: "invalid", field: "body.events[0]", says: "ready or promoted"},
		{name: "no events", method: "POST", path: "/api/v1/webhooks", body: `{"url":"https://x.example","secret":"` + secret + `","events":[]}`,
			status: 400, code: "invalid", field: "body.events"},
		{name: "unknown field", method: "POST", path: "/api/v1/webhooks", body: `{"url":"https://x.example","secret":"` + secret + `","events":["ready"],"colour":"red"}`,
			status: 400, code: "invalid", field: "body.colour"},
		{name: "delete", method: "DELETE", path: "/api/v1/webhooks/1", status: 204},
		{name: "delete again", method: "DELETE", path: "/api/v1/webhooks/1", status: 404, code: "not_found", says: "webhook 1"},
		{name: "delete bad id", method: "DELETE", path: "/api/v1/webhooks/x", status: 400, code: "invalid", field: "path.id"},
	})
}

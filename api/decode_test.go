package api

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// The check-in route decodes its body itself, once: it must refuse what
// huma's schema validation refuses on every other route, naming the field.
func TestCheckinDecodingIsStrict(t *testing.T) {
	_, ts, toks := checkinServer(t, Config{CheckinRate: -1})
	post := func(body string) (int, ErrorBody) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, ts.URL+fleet.CheckinPath, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+toks["agent-a"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var eb ErrorBody
		if resp.StatusCode != http.StatusOK {
			if err := json.Unmarshal(b, &eb); err != nil {
				t.Fatalf("%d answer is not an error body: %s", resp.StatusCode, b)
			}
		}
		return resp.StatusCode, eb
	}
	good := `{"instance_id":"web-1","hostname":"web-1","labels":{"team":"web"},"release":{"image":"appserver","version":"1"}}`
	if code, eb := post(good); code != http.StatusOK {
		t.Fatalf("good check-in: %d %+v", code, eb)
	}
	cases := []struct{ name, body, field, says string }{
		{"unknown field", `{"instance_id":"web-1","colour":"red","release":{"image":"appserver","version":"1"}}`, "body.colour", "unexpected property"},
		{"wrong type", `{"instance_id":"web-1","release":"appserver-1"}`, "body.release", "expected an object"},
		{"wrong type inside", `{"instance_id":"web-1","labels":{"team":7},"release":{"image":"appserver","version":"1"}}`, "body.labels", "expected a string"},
		{"number for id", `{"instance_id":12,"release":{"image":"appserver","version":"1"}}`, "body.instance_id", "expected a string"},
		{"malformed", `{"instance_id":`, "body", "not valid JSON"},
		{"syntax", `{"instance_id" "web-1"}`, "body", "not valid JSON"},
		{"empty", ``, "", "request body is required"},
		{"trailing data", good + `{}`, "body", "after its JSON value"},
		{"array", `[]`, "body", "expected an object"},
		{"missing release", `{"instance_id":"web-1"}`, "body.release.image", "not a valid image name"},
		{"bad id", `{"instance_id":"web 1","release":{"image":"appserver","version":"1"}}`, "body.instance_id", "contains a space"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, eb := post(c.body)
			if code != http.StatusBadRequest || eb.Code != kiln.EINVALID || eb.Field != c.field || !strings.Contains(eb.Message, c.says) {
				t.Errorf("got %d %+v; want 400 invalid, field %s, message with %q", code, eb, c.field, c.says)
			}
		})
	}

	// The OpenAPI document still describes the body.
	resp, err := ts.Client().Get(ts.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]struct {
			RequestBody struct {
				Required bool
				Content  map[string]struct {
					Schema struct {
						Ref string `json:"$ref"`
					}
				}
			} `json:"requestBody"`
		}
		Components struct {
			Schemas map[string]struct {
				AdditionalProperties *bool    `json:"additionalProperties"`
				Required             []string `json:"required"`
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	rb := doc.Paths[fleet.CheckinPath]["post"].RequestBody
	ref := rb.Content["application/json"].Schema.Ref
	name := ref[strings.LastIndex(ref, "/")+1:]
	sc, ok := doc.Components.Schemas[name]
	if !rb.Required || !ok || sc.AdditionalProperties == nil || *sc.AdditionalProperties || !strings.Contains(strings.Join(sc.Required, ","), "instance_id") {
		t.Errorf("check-in body in /openapi.json: required=%v ref=%q schema=%+v", rb.Required, ref, sc)
	}
}

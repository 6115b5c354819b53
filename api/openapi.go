package api

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/yaml"

	kiln "github.com/kiln-project/kiln"
)

// The OpenAPI document: what it says beyond the operations' Go types (who
// may call each operation, where the API is, which errors each answers),
// and the routes that serve it. Clients are generated from it
// (client_test.go drives a generated client), so it must stay lint-clean
// (openapi_test.go runs redocly lint over it).

// BearerScheme is the name of the security scheme every operation but the
// public ones requires.
const BearerScheme = "bearer"

// RoleExtension is the operation field that names the least role an
// operation needs (public for those that need no token).
const RoleExtension = "x-kiln-role"

// errorResponse is one error status's shared response, under
// #/components/responses/NAME.
type errorResponse struct {
	name, description string
	example           ErrorBody
	header            string // a response header it carries, if any
}

var errorResponses = map[int]errorResponse{
	http.StatusBadRequest: {"BadRequest",
		"The request is not valid: malformed JSON, an unknown field, a value out of range or of the wrong form. `field` names the first field at fault, `details` every problem.",
		ErrorBody{HTTPStatus: 400, Code: kiln.EINVALID, Field: "body.semver",
			Message: `"1.0" is not a semantic version; write MAJOR.MINOR.PATCH, e.g. 1.0.4 (kiln appends the build stamp)`}, ""},
	http.StatusUnauthorized: {"Unauthorized",
		"No token, or the token is unknown, revoked or expired. Send `Authorization: Bearer kiln_…` with a token from `kiln token create NAME --role ROLE`.",
		ErrorBody{HTTPStatus: 401, Code: kiln.EUNAUTH,
			Message: "this operation needs a token; send `Authorization: Bearer kiln_…` with a token from `kiln token create`"}, "WWW-Authenticate"},
	http.StatusForbidden: {"Forbidden",
		"The token's role does not allow the operation (its `" + RoleExtension + "` names the least role it needs), or a browser sent a change from another site.",
		ErrorBody{HTTPStatus: 403, Code: kiln.EFORBIDDEN,
			Message: "POST /api/v1/images needs the builder role (allowed: builder, operator, admin); token ci-read has role viewer — ask an admin for a token with that role"}, ""},
	http.StatusNotFound: {"NotFound",
		"Something the request names is not known (image, version, run, instance, service…); the message names it.",
		ErrorBody{HTTPStatus: 404, Code: kiln.ENOTFOUND, Message: `image "appserver" not found; list images with kiln image list`}, ""},
	http.StatusConflict: {"Conflict",
		"The change conflicts with what is recorded: a duplicate name, a status transition that is not allowed, or a change to what is immutable (code `immutable`).",
		ErrorBody{HTTPStatus: 409, Code: kiln.ECONFLICT, Field: "body.name", Message: `image "appserver" already exists`}, ""},
	http.StatusRequestEntityTooLarge: {"PayloadTooLarge",
		"The request body is larger than 1 MiB.",
		ErrorBody{HTTPStatus: 413, Code: kiln.EINVALID, Message: "request body is larger than 1 MiB; send less data per request"}, ""},
	http.StatusUnsupportedMediaType: {"UnsupportedMediaType",
		"The request body is not sent as `Content-Type: application/json`.",
		ErrorBody{HTTPStatus: 415, Code: kiln.EINVALID, Field: "body",
			Message: "validation failed: body: unknown content type: application/x-www-form-urlencoded"}, ""},
	http.StatusTooManyRequests: {"TooManyRequests",
		"Too many requests: from this address after repeated refusals (401/403), or check-ins from this agent token; `Retry-After` says when to try again.",
		ErrorBody{HTTPStatus: 429, Code: kiln.EUNAVAILABLE,
			Message: "token agents sends more than 50 check-ins per second; retry after 20ms, or spread agents over several tokens"}, "Retry-After"},
	http.StatusInternalServerError: {"InternalError",
		"A bug in kiln; the server log has the details.",
		ErrorBody{HTTPStatus: 500, Code: kiln.EINTERNAL, Message: "internal error; the server log has the details"}, ""},
	http.StatusServiceUnavailable: {"Unavailable",
		"The database is locked or unreachable, or this server does not offer what the operation needs (a signing key, a machine that runs rollouts); the message says where to go instead.",
		ErrorBody{HTTPStatus: 503, Code: kiln.EUNAVAILABLE, Message: "database is locked; retry"}, ""},
}

var responseHeaders = map[string]*huma.Header{
	"WWW-Authenticate": {Description: "`Bearer realm=\"kiln\"`", Schema: &huma.Schema{Type: huma.TypeString}},
	"Retry-After":      {Description: "seconds to wait before sending again", Schema: &huma.Schema{Type: huma.TypeInteger}},
}

// describeAPI fills in what the document says about the whole API: where
// it is, the bearer scheme, and the shared error responses.
func describeAPI(o *huma.OpenAPI, publicURL string) {
	server := &huma.Server{URL: "/", Description: "relative to where this document was fetched (kiln serve --public-url names the address)"}
	if publicURL != "" {
		server = &huma.Server{URL: publicURL, Description: "this kiln server"}
	}
	o.Servers = []*huma.Server{server}
	if o.Components.SecuritySchemes == nil {
		o.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	o.Components.SecuritySchemes[BearerScheme] = &huma.SecurityScheme{
		Type: "http", Scheme: "bearer", BearerFormat: "kiln API token (kiln_…)",
		Description: "An API token from `kiln token create NAME --role ROLE`, sent as `Authorization: Bearer kiln_…`. " +
			"Each operation's `" + RoleExtension + "` names the least role it needs: viewer < builder < operator < admin; " +
			"agent stands apart (check-ins only) and admin may do everything (docs/security.md).",
	}
	errSchema := o.Components.Schemas.Schema(reflect.TypeFor[ErrorBody](), true, "ErrorBody")
	if o.Components.Responses == nil {
		o.Components.Responses = map[string]*huma.Response{}
	}
	for _, er := range errorResponses {
		resp := &huma.Response{Description: er.description, Content: map[string]*huma.MediaType{
			"application/json": {Schema: errSchema, Example: er.example},
		}}
		if er.header != "" {
			resp.Headers = map[string]*huma.Header{er.header: responseHeaders[er.header]}
		}
		o.Components.Responses[er.name] = resp
	}
}

// describeOperation adds to a registered operation what its Go types do
// not say: the role it needs, its security requirement, the errors it may
// answer (besides those huma would guess) and an example request.
func describeOperation(op *huma.Operation, role Role, extra []int) {
	if op.Extensions == nil {
		op.Extensions = map[string]any{}
	}
	op.Extensions[RoleExtension] = string(role)
	op.Security = []map[string][]string{{BearerScheme: {}}}
	if role == RolePublic {
		op.Security = []map[string][]string{} // "security: []": no token
	}
	// huma's guesses: a "default" error, and 422, which kiln answers 400.
	delete(op.Responses, "default")
	delete(op.Responses, "422")
	codes := slices.Clone(extra)
	codes = append(codes, http.StatusInternalServerError, http.StatusServiceUnavailable)
	if role != RolePublic {
		// Any authenticated route answers 429 to a source whose requests
		// keep being refused (refusals.go); agents also to too many
		// check-ins.
		codes = append(codes, http.StatusUnauthorized, http.StatusForbidden, http.StatusTooManyRequests)
	}
	if len(op.Parameters) > 0 || op.RequestBody != nil {
		codes = append(codes, http.StatusBadRequest)
	}
	if op.RequestBody != nil {
		codes = append(codes, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	if slices.ContainsFunc(op.Parameters, func(p *huma.Param) bool { return p.In == "path" }) {
		codes = append(codes, http.StatusNotFound)
	}
	if op.Method == http.MethodPost || op.Method == http.MethodPut || op.Method == http.MethodPatch {
		codes = append(codes, http.StatusConflict)
	}
	for _, c := range codes {
		er, ok := errorResponses[c]
		if !ok {
			panic("api: " + op.OperationID + " declares error status " + strconv.Itoa(c) + ", which has no shared response in errorResponses")
		}
		op.Responses[strconv.Itoa(c)] = &huma.Response{Ref: "#/components/responses/" + er.name}
	}
	if ex, ok := requestExamples[op.OperationID]; ok && op.RequestBody != nil {
		if mt := op.RequestBody.Content["application/json"]; mt != nil {
			mt.Example = ex
		}
	}
}

// requestExamples are the example bodies of the main requests.
var requestExamples = map[string]any{
	"create-image": map[string]any{"name": "appserver", "description": "nginx and the app on Debian 12"},
	"create-version": map[string]any{
		"semver": "1.0.4", "method": "fresh", "base": "basic-linux-4",
		"sources":  []any{map[string]any{"kind": "origin", "ref": "https://git.example.com/appserver.git#9f2c1e7"}},
		"packages": []any{map[string]any{"name": "nginx", "version": "1.22.1-9", "architecture": "amd64", "source": "nginx"}},
		"tags":     map[string]any{"team": "web"},
	},
	"set-version-status":  map[string]any{"status": "ready", "reason": "smoke tests passed in staging"},
	"update-version-tags": map[string]any{"set": map[string]any{"lts": "yes"}, "remove": []any{"beta"}, "reason": "long-term line"},
	"promote":             map[string]any{"number": 4, "reason": "CHG-1234 approved"},
	"rollback":            map[string]any{"reason": "error rate above 2% after the promotion"},
	"instance-checkin": map[string]any{
		"instance_id": "web-01", "hostname": "web-01", "environment": "prod",
		"labels": map[string]any{"region": "eu-west"}, "release": map[string]any{"image": "appserver", "version": "4"},
	},
	"set-age-policy": map[string]any{"max_age_seconds": 7776000},
}

// registerDocuments serves the OpenAPI document, 3.1 and (for generators
// that read only 3.0, as oapi-codegen) 3.0, in JSON and YAML. Public and
// documented like every other route; huma's own document and schema routes
// are switched off (New), so these are the only ones.
func (s *Server) registerDocuments() {
	type docOut struct{ Body func(huma.Context) }
	docs := []struct {
		id, path, summary, contentType string
		render                         func() ([]byte, error)
	}{
		{"get-openapi-json", "/openapi.json", "This document (OpenAPI 3.1, JSON)", "application/openapi+json", s.openAPI31},
		{"get-openapi-yaml", "/openapi.yaml", "This document (OpenAPI 3.1, YAML)", "application/openapi+yaml", func() ([]byte, error) { return toYAML(s.openAPI31()) }},
		{"get-openapi-3-0-json", "/openapi-3.0.json", "This document as OpenAPI 3.0 (JSON), for generators that read only 3.0", "application/openapi+json", s.openAPI30},
		{"get-openapi-3-0-yaml", "/openapi-3.0.yaml", "This document as OpenAPI 3.0 (YAML)", "application/openapi+yaml", func() ([]byte, error) { return toYAML(s.openAPI30()) }},
	}
	for _, d := range docs {
		schema := &huma.Schema{Type: huma.TypeObject, Description: "an OpenAPI document"}
		if d.contentType == "application/openapi+yaml" {
			schema = &huma.Schema{Type: huma.TypeString, Description: "an OpenAPI document"}
		}
		render := sync.OnceValues(d.render)
		register(s, RolePublic, huma.Operation{
			OperationID: d.id, Method: http.MethodGet, Path: d.path, Summary: d.summary, Tags: []string{"meta"},
			Responses: map[string]*huma.Response{"200": {Description: "the document",
				Content: map[string]*huma.MediaType{d.contentType: {Schema: schema}}}},
		}, func(context.Context, *struct{}) (*docOut, error) {
			b, err := render()
			if err != nil {
				return nil, err
			}
			return &docOut{Body: func(hctx huma.Context) {
				hctx.SetHeader("Content-Type", d.contentType)
				hctx.SetStatus(http.StatusOK)
				_, _ = hctx.BodyWriter().Write(b)
			}}, nil
		})
		// Rendering needs no database: never 503.
		delete(s.operation(http.MethodGet, d.path).Responses, "503")
	}
}

// openAPI31 is the document as registered.
func (s *Server) openAPI31() ([]byte, error) { return json.Marshal(s.api.OpenAPI()) }

// openAPI30 is huma's 3.0 downgrade, made valid 3.0: huma leaves
// contentMediaType (a 3.1 keyword) and descriptions beside $ref, which 3.0
// ignores and linters flag.
func (s *Server) openAPI30() ([]byte, error) {
	b, err := s.api.OpenAPI().Downgrade()
	if err != nil {
		return nil, err
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	strip30(doc)
	return json.Marshal(doc)
}

func strip30(v any) {
	switch v := v.(type) {
	case map[string]any:
		delete(v, "contentMediaType")
		if _, ok := v["$ref"]; ok {
			for k := range v {
				if k != "$ref" {
					delete(v, k)
				}
			}
			return
		}
		for _, e := range v {
			strip30(e)
		}
	case []any:
		for _, e := range v {
			strip30(e)
		}
	}
}

func toYAML(b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := yaml.Convert(&buf, bytes.NewReader(b)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

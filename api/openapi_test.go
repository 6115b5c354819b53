package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/kiln-project/kiln/internal/ci"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Servers []struct {
		URL string `json:"url"`
	} `json:"servers"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type, Scheme string
		} `json:"securitySchemes"`
		Responses map[string]struct {
			Content map[string]struct {
				Schema struct {
					Ref string `json:"$ref"`
				} `json:"schema"`
			} `json:"content"`
		} `json:"responses"`
	} `json:"components"`
	Paths map[string]map[string]struct {
		OperationID string                `json:"operationId"`
		Role        string                `json:"x-kiln-role"`
		Security    []map[string][]string `json:"security"`
		Responses   map[string]struct {
			Ref string `json:"$ref"`
		} `json:"responses"`
	} `json:"paths"`
}

var kebab = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// The document says, for every route, the role it needs, whether it needs
// the bearer token, and the errors it answers in the one error shape; and
// every route is in it. Operation ids are unique and kebab-case.
func TestOpenAPIRolesSecurityAndErrors(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	for _, p := range []string{"/openapi.json", "/openapi-3.0.json"} {
		t.Run(p, func(t *testing.T) {
			var doc openAPIDoc
			if err := json.Unmarshal(get(t, e.ts.URL+p), &doc); err != nil {
				t.Fatal(err)
			}
			if len(doc.Servers) == 0 || doc.Servers[0].URL == "" {
				t.Errorf("no servers entry: %+v", doc.Servers)
			}
			if s := doc.Components.SecuritySchemes[api.BearerScheme]; s.Type != "http" || s.Scheme != "bearer" {
				t.Errorf("securitySchemes.%s = %+v, want http bearer", api.BearerScheme, s)
			}
			for name, r := range doc.Components.Responses {
				if ref := r.Content["application/json"].Schema.Ref; ref != "#/components/schemas/ErrorBody" {
					t.Errorf("response %s has schema %q, want the one error shape (ErrorBody)", name, ref)
				}
			}
			ids := map[string]string{}
			for _, r := range e.srv.Routes() {
				op, ok := doc.Paths[r.Path][strings.ToLower(r.Method)]
				what := r.Method + " " + r.Path
				if !ok {
					t.Errorf("%s is a route but not in the document", what)
					continue
				}
				if op.Role != string(r.Role) {
					t.Errorf("%s: %s = %q, want %q", what, api.RoleExtension, op.Role, r.Role)
				}
				if !kebab.MatchString(op.OperationID) {
					t.Errorf("%s: operationId %q is not kebab-case", what, op.OperationID)
				}
				if other, dup := ids[op.OperationID]; dup {
					t.Errorf("%s and %s share operationId %q", what, other, op.OperationID)
				}
				ids[op.OperationID] = what
				switch {
				case r.Role == api.RolePublic && (op.Security == nil || len(op.Security) != 0):
					t.Errorf("%s is public but its security is %v, want []", what, op.Security)
				case r.Role != api.RolePublic && (len(op.Security) != 1 || op.Security[0][api.BearerScheme] == nil):
					t.Errorf("%s needs %s but its security is %v, want [{%s: []}]", what, r.Role, op.Security, api.BearerScheme)
				}
				var want []string
				if r.Role != api.RolePublic {
					want = []string{"401", "403", "500"}
				}
				for _, code := range want {
					if ref := op.Responses[code].Ref; !strings.HasPrefix(ref, "#/components/responses/") {
						t.Errorf("%s documents no %s response (got %q)", what, code, ref)
					}
				}
				for code := range op.Responses {
					if code == "default" || code == "422" {
						t.Errorf("%s documents %s: kiln answers validation errors 400", what, code)
					}
				}
			}
		})
	}
	// huma's own routes are off: every route the server answers is one of
	// Routes() (and so walked by TestRouteRoles).
	for _, p := range []string{"/schemas/ErrorBody", "/schemas/ErrorBody.json", "/docs"} {
		if code, _ := e.request(t, "", http.MethodGet, p); code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, code)
		}
	}
	for _, p := range []string{"/openapi.yaml", "/openapi-3.0.yaml"} {
		if b := get(t, e.ts.URL+p); !bytes.Contains(b, []byte("openapi: ")) {
			t.Errorf("%s does not look like a YAML OpenAPI document:\n%.200s", p, b)
		}
	}
}

// The server entry is the public URL when one is configured.
func TestOpenAPIServerURL(t *testing.T) {
	db, err := store.Open(context.Background(), "", t.TempDir(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ts := httptest.NewServer(api.New(api.Config{PublicURL: "https://kiln.example.com"}.WithStores(db)))
	t.Cleanup(ts.Close)
	var doc openAPIDoc
	if err := json.Unmarshal(get(t, ts.URL+"/openapi-3.0.json"), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "https://kiln.example.com" || doc.OpenAPI != "3.0.3" {
		t.Fatalf("openapi %s, servers %+v", doc.OpenAPI, doc.Servers)
	}
}

// Refusals at /metrics are audited like every other refusal.
func TestMetricsRefusalsAudited(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	if code, _ := e.request(t, "", http.MethodGet, api.MetricsPath); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	if code, _ := e.request(t, e.tokens[kiln.RoleAgent], http.MethodGet, api.MetricsPath); code != http.StatusForbidden {
		t.Fatalf("agent token: %d", code)
	}
	es, err := e.db.ListAudit(context.Background(), kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range es {
		if a.Result == kiln.AuditDenied && strings.Contains(a.Target, api.MetricsPath) {
			got = append(got, a.Actor)
		}
	}
	if strings.Join(got, ",") != "anonymous,token:agent" {
		t.Fatalf("denied /metrics requests audited for %q, want anonymous and token:agent", got)
	}
}

// redoclyVersion is the @redocly/cli scripts/deps.sh installs; the test
// uses that install (KILN_REDOCLY names another binary), else npx.
const redoclyVersion = "2.77.0"

// redocly lint with its recommended rules (redocly.yaml at the top of the
// repository says which are changed, and why) finds no error in either
// document the server serves.
func TestOpenAPIRedoclyLint(t *testing.T) {
	if testing.Short() {
		ci.SkipOrFail(t, "runs redocly: not in -short")
	}
	var argv []string
	if bin := redoclyBinary(); bin != "" {
		argv = []string{bin}
	} else if npx, err := exec.LookPath("npx"); err == nil {
		argv = []string{npx, "--yes", "@redocly/cli@" + redoclyVersion}
	} else {
		ci.SkipOrFail(t, "neither redocly (scripts/deps.sh installs it) nor npx is installed")
	}
	config, err := filepath.Abs(filepath.Join("..", "redocly.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	dir := t.TempDir()
	for _, p := range []string{"/openapi.json", "/openapi-3.0.json"} {
		file := filepath.Join(dir, strings.TrimPrefix(p, "/"))
		if err := os.WriteFile(file, get(t, e.ts.URL+p), 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "lint", "--config", config, "--max-problems", "1000", file)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("redocly lint %s: %v\n%s", p, err, out)
			continue
		}
		t.Logf("redocly lint %s: %s", p, lastLine(out))
	}
}

func redoclyBinary() string {
	if b := os.Getenv("KILN_REDOCLY"); b != "" {
		return b
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	b := filepath.Join(cache, "kiln", "redocly", "node_modules", ".bin", "redocly")
	if _, err := os.Stat(b); err != nil {
		return ""
	}
	return b
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.Contains(l, "warning") || strings.Contains(l, "valid") {
			return l
		}
	}
	return lines[len(lines)-1]
}

// A body sent as a form is the client's mistake: 415 with code invalid (as
// documented), not an internal error.
func TestUnsupportedMediaTypeIsInvalid(t *testing.T) {
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/api/v1/images", strings.NewReader("name=web"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+e.tokens[kiln.RoleBuilder])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body api.ErrorBody
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnsupportedMediaType || body.Code != kiln.EINVALID {
		t.Fatalf("%d %+v, want 415 invalid", resp.StatusCode, body)
	}
}

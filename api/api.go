// Package api serves kiln's HTTP JSON API (OpenAPI 3.1 document at
// /openapi.json) on top of the domain interfaces. It knows HTTP, JSON and
// roles; it must not know SQL, nspawn or any concrete store.
package api

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	kiln "github.com/kiln-project/kiln"
)

// MaxBodyBytes limits every request body; larger bodies get 413.
const MaxBodyBytes = 1 << 20

// Role is the least role an operation needs. Authentication enforces it
// (docs/security.md); every route declares one, in the routes table.
type Role string

// Roles, from least to most powerful.
const (
	RolePublic   Role = "public" // health and the API description only
	RoleViewer   Role = "viewer"
	RoleAgent    Role = "agent"
	RoleBuilder  Role = "builder"
	RoleOperator Role = "operator"
	RoleAdmin    Role = "admin"
)

// Config wires the API to the domain.
type Config struct {
	Registry kiln.Registry
	Logger   *slog.Logger
	Version  string // kiln's version, shown in the OpenAPI document
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	api    huma.API
	routes []Route
}

// Route is one registered operation and the role it needs.
type Route struct {
	Method string
	Path   string
	Role   Role
}

// New builds the API's handler.
func New(cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	installErrorModel()
	hc := huma.DefaultConfig("kiln API", cfg.Version)
	hc.Info.Description = "Images, versions, provenance and status of a kiln registry."
	hc.DocsPath = ""     // the docs renderer loads scripts from a CDN; kiln serves no external assets
	hc.CreateHooks = nil // no $schema links in bodies: clients decode strictly
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.api = humago.New(s.mux, hc)
	s.routes = append(s.routes,
		Route{http.MethodGet, "/openapi.json", RolePublic},
		Route{http.MethodGet, "/openapi.yaml", RolePublic},
		Route{http.MethodGet, "/openapi-3.0.json", RolePublic},
	)
	s.registerHealth()
	s.registerImages()
	s.registerVersions()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxBodyBytes {
		// Refuse before reading: the connection is closed so the unread
		// rest of the body is never taken for the next request.
		w.Header().Set("Connection", "close")
		writeError(w, &ErrorBody{HTTPStatus: http.StatusRequestEntityTooLarge, Code: kiln.EINVALID,
			Message: "request body is larger than 1 MiB; send less data per request"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	// Until tokens identify callers (docs/security.md), history entries
	// name the client's address.
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	r = r.WithContext(kiln.WithActor(r.Context(), "api:"+host))
	s.mux.ServeHTTP(w, r)
}

// writeError writes an error body outside huma (before routing).
func writeError(w http.ResponseWriter, body *ErrorBody) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(body.HTTPStatus)
	_ = json.NewEncoder(w).Encode(body)
}

// Routes lists every registered operation with its role.
func (s *Server) Routes() []Route { return s.routes }

// register adds one operation; the role is declared here, with the route.
func register[I, O any](s *Server, role Role, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	op.MaxBodyBytes = MaxBodyBytes
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata["role"] = role
	s.routes = append(s.routes, Route{Method: op.Method, Path: op.Path, Role: role})
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.toHTTP(err)
		}
		return out, nil
	})
}

func (s *Server) registerHealth() {
	type healthOut struct {
		Body struct {
			Status string `json:"status" example:"ok"`
		}
	}
	register(s, RolePublic, huma.Operation{
		OperationID: "health", Method: http.MethodGet, Path: "/healthz",
		Summary: "Liveness and database reachability", Tags: []string{"health"},
	}, func(ctx context.Context, _ *struct{}) (*healthOut, error) {
		if _, err := s.cfg.Registry.ListImages(ctx); err != nil {
			return nil, err
		}
		out := &healthOut{}
		out.Body.Status = "ok"
		return out, nil
	})
}

// Package api serves kiln's HTTP JSON API (OpenAPI 3.1 document at
// /openapi.json) on top of the domain interfaces. It knows HTTP, JSON and
// roles; it must not know SQL, nspawn or any concrete store.
package api

import (
	"context"
	"crypto"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	kiln "github.com/kiln-project/kiln"
)

// MaxBodyBytes limits every request body; larger bodies get 413.
const MaxBodyBytes = 1 << 20

// Role is the least role an operation needs (kiln.Role, plus RolePublic).
// The auth middleware enforces it (docs/security.md); every route declares
// one, where it is registered.
type Role = kiln.Role

// Roles an operation may declare.
const (
	RolePublic   Role = "public" // health and the API description only; no token needed
	RoleViewer        = kiln.RoleViewer
	RoleAgent         = kiln.RoleAgent
	RoleBuilder       = kiln.RoleBuilder
	RoleOperator      = kiln.RoleOperator
	RoleAdmin         = kiln.RoleAdmin
)

// Default limits on check-ins (agent operations) per token.
const (
	DefaultCheckinRate  = 50  // per second, sustained
	DefaultCheckinBurst = 200 // at once
)

// DefaultAuthCacheTTL bounds how long a revoked token may still be
// accepted by a server that verified it just before.
const DefaultAuthCacheTTL = 5 * time.Second

// Config wires the API to the domain: each store serves its operations,
// and an operation whose store is nil is not offered (cmd/kiln gives
// every store; a test gives what it exercises).
type Config struct {
	Registry kiln.Registry
	Logger   *slog.Logger
	Version  string // kiln's version, shown in the OpenAPI document
	// PublicURL is where clients reach the API (kiln serve --public-url,
	// else derived from --listen), the OpenAPI document's server; empty:
	// "/", relative to where the document was fetched.
	PublicURL string
	// Tokens authenticates callers, Audit records refused requests.
	// Without a token store every non-public operation is refused.
	Tokens kiln.TokenStore
	Audit  kiln.AuditLog
	// CheckinRate limits agent operations per token and second (0: the
	// default; negative: no limit), CheckinBurst how many may come at once.
	CheckinRate  float64
	CheckinBurst int
	// RefusalRate limits refused requests (401/403) per source address
	// and second before they are answered 429 (0: the default; negative:
	// no limit), RefusalBurst how many may come at once; RefusalWindow is
	// how long repeated refusals are folded into one audit entry (0:
	// DefaultRefusalWindow). Close the Server to append what is folded.
	RefusalRate   float64
	RefusalBurst  int
	RefusalWindow time.Duration
	// AuthCacheTTL is how long a verified bearer token is trusted without
	// asking the token store again, and so how long a revocation may take
	// to reach this server (0: DefaultAuthCacheTTL; negative: no cache).
	AuthCacheTTL time.Duration
	// Inventory, Fleet and Advisories serve the fleet operations and
	// /metrics (all three, or none of them). Checkins records check-ins
	// (a fleet.Batcher); nil records each in its own transaction.
	Inventory  kiln.Inventory
	Fleet      kiln.Fleet
	Advisories kiln.AdvisoryStore
	Checkins   CheckinRecorder
	// AdvisorySources adds each advisory source's sync state to /metrics
	// (none when nil).
	AdvisorySources kiln.AdvisorySourceStore
	// Runs and Channels serve the pipeline operations; Status answers
	// /api/v1/status (none when nil).
	Runs kiln.RunStore
	// StartRuns queues runs on the server (POST /api/v1/runs); no route
	// when nil.
	StartRuns kiln.RunStarter
	Channels  kiln.ChannelStore
	Status    func(ctx context.Context) (any, error)
	// ServiceStore and RolloutStore serve the service and rollout
	// operations (both, or none of them).
	ServiceStore kiln.ServiceStore
	RolloutStore kiln.RolloutStore
	// Rollouts runs rollouts and front ends on the server's machine (the
	// service and rollout routes that need it answer 503 when nil).
	Rollouts RolloutHost
	// Pauses serves pausing and resuming the autopilot (environments;
	// services and their policies with ServiceStore); no routes when nil.
	Pauses kiln.PauseStore
	// FollowStatus, when set, says what kiln serve's follower does for a
	// service (GET …/policy shows it).
	FollowStatus func(ctx context.Context, s *kiln.Service) (*FollowState, error)
	// Importer records several versions all or nothing (import-versions;
	// 503 there when nil); Packages gives an external version its package
	// manifest (set-version-packages; 503 there when nil).
	Importer kiln.VersionImporter
	Packages kiln.PackageRecorder
	// Revoker serves revoke, restore and the scheduled revocations (503
	// there when nil).
	Revoker kiln.Revoker
	// Reproductions serves a version's rebuild checks (503 there when
	// nil).
	Reproductions kiln.Reproductions
	// Webhooks serves the webhook operations.
	Webhooks kiln.WebhookStore
	// SigningKey is the public half of the provenance signing key (an
	// ed25519.PublicKey), published at /api/v1/signing-key; nil: 503 there.
	SigningKey crypto.PublicKey
	// Artifacts is the artifact store versions' root filesystems and disk
	// images are exported from (GET …/artifacts/{format}); nil: 503 there.
	Artifacts kiln.ArtifactStore
}

// Server is the HTTP API.
type Server struct {
	cfg    Config
	mux    *http.ServeMux
	api    huma.API
	routes []Route
	// checkins limits agent operations per token; nil for no limit.
	checkins  *limiter
	refusals  *refusals
	authCache *authCache
	handler   http.Handler
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
	// The documents are served by registerDocuments, as declared public
	// routes; nothing links to huma's per-schema routes (no $schema links).
	hc.OpenAPIPath, hc.SchemasPath = "", ""
	hc.Formats = jsonFormats(hc.Formats)
	describeAPI(hc.OpenAPI, cfg.PublicURL)
	switch {
	case cfg.CheckinRate == 0:
		cfg.CheckinRate, cfg.CheckinBurst = DefaultCheckinRate, DefaultCheckinBurst
	case cfg.CheckinBurst == 0:
		cfg.CheckinBurst = int(cfg.CheckinRate)
	}
	if cfg.AuthCacheTTL == 0 {
		cfg.AuthCacheTTL = DefaultAuthCacheTTL
	}
	s := &Server{cfg: cfg, mux: http.NewServeMux(), checkins: newLimiter(cfg.CheckinRate, cfg.CheckinBurst),
		authCache: newAuthCache(cfg.AuthCacheTTL), refusals: newRefusals(cfg)}
	s.api = humago.New(s.mux, hc)
	// Before any operation is registered: huma binds middlewares then.
	s.api.UseMiddleware(s.authorize)
	s.handler = SecurityHeaders(CrossOrigin(http.HandlerFunc(s.serve)))
	s.registerDocuments()
	s.registerHealth()
	s.registerImages()
	s.registerVersions()
	s.registerRevocations()
	s.registerAttachments()
	s.registerSigning()
	s.registerExport()
	s.registerSBOM()
	s.registerReproductions()
	s.registerFleet()
	s.registerRuns()
	s.registerWebhooks()
	s.registerRollout()
	s.registerAutopilot()
	return s
}

// ServeHTTP implements http.Handler: security headers, cross-origin
// protection, the body limit, then the operation behind its role check.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > MaxBodyBytes {
		// Refuse before reading: the connection is closed so the unread
		// rest of the body is never taken for the next request.
		w.Header().Set("Connection", "close")
		writeError(w, &ErrorBody{HTTPStatus: http.StatusRequestEntityTooLarge, Code: kiln.EINVALID,
			Message: "request body is larger than 1 MiB; send less data per request"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	// The actor is anonymous until the auth middleware names the token;
	// the source address goes into audit entries.
	r = r.WithContext(kiln.WithSource(kiln.WithActor(r.Context(), anonymous), clientHost(r)))
	s.mux.ServeHTTP(w, r)
}

// clientHost is the address a request came from (no proxy headers are
// trusted).
func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeError writes an error body outside huma (before routing).
func writeError(w http.ResponseWriter, body *ErrorBody) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(body.HTTPStatus)
	_ = json.NewEncoder(w).Encode(body)
}

// Routes lists every registered operation with its role.
func (s *Server) Routes() []Route { return s.routes }

// register adds one operation; the role is declared here, with the route,
// and goes into the OpenAPI document with the errors the operation may
// answer. op.Errors lists error statuses beyond those describeOperation
// derives from the role, method and parameters.
func register[I, O any](s *Server, role Role, op huma.Operation, h func(context.Context, *I) (*O, error)) {
	if role != RolePublic && !role.Valid() {
		panic(fmt.Sprintf("api: %s %s declares role %q; declare one of public, viewer, agent, builder, operator, admin", op.Method, op.Path, role))
	}
	op.MaxBodyBytes = MaxBodyBytes
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata["role"] = role
	extra := op.Errors
	op.Errors = nil // huma would add its own (422) responses
	s.routes = append(s.routes, Route{Method: op.Method, Path: op.Path, Role: role})
	huma.Register(s.api, op, func(ctx context.Context, in *I) (*O, error) {
		out, err := h(ctx, in)
		if err != nil {
			return nil, s.toHTTP(err)
		}
		return out, nil
	})
	describeOperation(s.operation(op.Method, op.Path), role, extra)
}

// operation is the registered operation method path in the document.
func (s *Server) operation(method, path string) *huma.Operation {
	item := s.api.OpenAPI().Paths[path]
	var op *huma.Operation
	switch method {
	case http.MethodGet:
		op = item.Get
	case http.MethodPost:
		op = item.Post
	case http.MethodPut:
		op = item.Put
	case http.MethodPatch:
		op = item.Patch
	case http.MethodDelete:
		op = item.Delete
	}
	if op == nil {
		panic("api: " + method + " " + path + " is not in the OpenAPI document after registering it")
	}
	return op
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

package web

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/fleet"
)

// Prefix is the path the dashboard is served under; Mount puts it there.
const Prefix = "/ui/"

//go:embed templates/*.html static/*
var files embed.FS

// Config wires the dashboard to the domain: Registry, Inventory, Fleet,
// Advisories and Tokens are required.
type Config struct {
	Registry   kiln.Registry
	Inventory  kiln.Inventory
	Fleet      kiln.Fleet
	Advisories kiln.AdvisoryStore
	// AdvisorySources is optional: with it the exposure page shows each
	// advisory source's last sync and error.
	AdvisorySources kiln.AdvisorySourceStore
	// Runs is optional: without it the runs pages say the pipeline is not
	// configured.
	Runs kiln.RunStore
	// Channels, when set, makes the stale report measure against each
	// environment's channel version.
	Channels kiln.ChannelStore
	Tokens   kiln.TokenStore
	Logger   *slog.Logger
	// Secure marks the session cookie Secure; set it when kiln serves TLS.
	Secure bool
	// InsecureListen shows a warning on every page: kiln listens on a
	// non-loopback address without TLS (kiln serve --insecure-listen).
	InsecureListen bool
	// SessionTTL is how long a sign-in lasts (api.DefaultSessionTTL when 0).
	SessionTTL time.Duration
	Clock      kiln.Clock // time.Now when nil
	Version    string     // kiln's version, shown in the footer
	// RowsPerPage bounds the rows of a report table (fleet report,
	// exposure, overage, stale) on one page; DefaultRowsPerPage when 0.
	// The totals under a table always count every row.
	RowsPerPage int
	// History is optional: the daily fleet counts the trends page draws;
	// without it the page says none are kept.
	History kiln.FleetHistory
	// Services and Rollouts are optional: the services pages; Timeline,
	// also optional, the samples a rollout's timeline is drawn from.
	Services kiln.ServiceStore
	Rollouts kiln.RolloutStore
	Timeline kiln.RolloutTimeline
	// Reproductions is optional: the version page says whether (and
	// when) `kiln version rebuild --check` reproduced the version.
	Reproductions kiln.Reproductions
	// Pauses is optional: the services pages show which services and
	// environments the autopilot leaves alone, by whom and why.
	Pauses kiln.PauseStore
	// AutoRefresh is optional: the environments whose estate says
	// refresh { auto = true }, for the services page.
	AutoRefresh func(ctx context.Context) ([]AutoRefresh, error)
	// FollowStatus is optional: what kiln serve's follower does for a
	// service now (waiting for its window until …), for the services
	// pages.
	FollowStatus func(ctx context.Context, s *kiln.Service) (*FollowState, error)
}

// DefaultRowsPerPage is how many rows a report table shows at once.
const DefaultRowsPerPage = 200

// Server is the dashboard's handler.
type Server struct {
	cfg      Config
	fleet    *fleet.Service
	sessions *api.Sessions
	pages    map[string]*template.Template
	handler  http.Handler
	menu     envMenu
}

// pageNames are the templates under templates/, each rendered inside
// layout.html.
var pageNames = []string{"signin", "fleet", "instances", "exposure", "overage", "stale",
	"images", "image", "version", "runs", "run", "error", "trends", "services", "service"}

// New builds the dashboard. It fails when the configuration lacks a store
// the pages need, or (a bug) when an embedded template does not parse.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if cfg.RowsPerPage <= 0 {
		cfg.RowsPerPage = DefaultRowsPerPage
	}
	switch {
	case cfg.Registry == nil:
		return nil, fmt.Errorf("web: no registry configured")
	case cfg.Inventory == nil || cfg.Fleet == nil || cfg.Advisories == nil:
		return nil, fmt.Errorf("web: no inventory, fleet or advisory store configured; give all three in web.Config")
	case cfg.Tokens == nil:
		return nil, fmt.Errorf("web: no token store configured; the dashboard signs users in with API tokens")
	}
	s := &Server{cfg: cfg, pages: map[string]*template.Template{}}
	s.fleet = fleet.New(cfg.Fleet, cfg.Advisories)
	s.fleet.Channels = cfg.Channels
	s.fleet.Clock = cfg.Clock
	s.sessions = &api.Sessions{Tokens: cfg.Tokens, Secure: cfg.Secure, TTL: cfg.SessionTTL, Logger: cfg.Logger, Clock: cfg.Clock}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(s.funcs()).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	s.handler = api.SecurityHeaders(api.CrossOrigin(s.routes()))
	return s, nil
}

// ServeHTTP implements http.Handler for paths under Prefix.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Mount returns the handler kiln serve listens with: the dashboard under
// Prefix, "/" redirecting to it, and every other path (the API, /healthz,
// /metrics, /openapi.json) to apiHandler.
func Mount(dashboard, apiHandler http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Prefix, dashboard)
	mux.Handle("GET /{$}", api.SecurityHeaders(http.RedirectHandler(Prefix, http.StatusSeeOther)))
	mux.Handle("/", apiHandler)
	return mux
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", cacheFor(time.Hour, http.FileServerFS(static))))
	mux.HandleFunc("GET "+Prefix+"signin", s.signInPage)
	mux.HandleFunc("POST "+Prefix+"signin", s.signIn)
	mux.HandleFunc("POST "+Prefix+"signout", s.signOut)

	viewer := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, s.sessions.Require(kiln.RoleViewer, http.HandlerFunc(s.toSignIn), noStore(h)))
	}
	viewer("GET "+Prefix+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"fleet", http.StatusSeeOther)
	})
	viewer("GET "+Prefix+"fleet", s.reportPage)
	viewer("GET "+Prefix+"fleet/instances", s.instancesPage)
	viewer("GET "+Prefix+"exposure", s.exposurePage)
	viewer("GET "+Prefix+"overage", s.overagePage)
	viewer("GET "+Prefix+"stale", s.stalePage)
	viewer("GET "+Prefix+"images", s.imagesPage)
	viewer("GET "+Prefix+"images/{image}", s.imagePage)
	viewer("GET "+Prefix+"images/{image}/versions/{number}", s.versionPage)
	viewer("GET "+Prefix+"runs", s.runsPage)
	viewer("GET "+Prefix+"runs/{id}", s.runPage)
	viewer("GET "+Prefix+"trends", s.trendsPage)
	viewer("GET "+Prefix+"services", s.servicesPage)
	viewer("GET "+Prefix+"services/{name}", s.servicePage)
	mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		s.render(w, r, http.StatusNotFound, "error", page{Title: "Not found",
			Error: fmt.Sprintf("there is no dashboard page at %s; use the links above", r.URL.Path)})
	})
	return mux
}

// cacheFor lets browsers keep static files for d.
func cacheFor(d time.Duration, next http.Handler) http.Handler {
	v := fmt.Sprintf("public, max-age=%d", int(d.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", v)
		next.ServeHTTP(w, r)
	})
}

// noStore keeps pages with fleet data out of shared and disk caches.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// page is what layout.html renders; Data is the page's own.
type page struct {
	Title string
	// Nav names the active menu entry.
	Nav      string
	User     *kiln.Token
	Insecure bool
	Version  string
	// Error is shown above the content (a bad filter value, a failure).
	Error string
	// Refresh reloads the page after so many seconds (a running run);
	// a meta refresh, since the dashboard runs no script.
	Refresh int
	Data    any
}

// render executes a page into a buffer first, so a template failure is a
// clean 500 rather than half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.User, _ = api.TokenFrom(r.Context())
	p.Insecure = s.cfg.InsecureListen
	p.Version = s.cfg.Version
	var buf bytes.Buffer
	if err := s.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "web: rendering a page failed", "page", name, "err", err)
		http.Error(w, "internal error rendering the page; see the server log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// fail renders err as an error page. Internal errors are logged and shown
// without their text, which may name database details.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, title string, err error) {
	code := kiln.ErrorCode(err)
	msg := kiln.ErrorMessage(err)
	if code == kiln.EINTERNAL || code == kiln.EUNAVAILABLE {
		s.cfg.Logger.ErrorContext(r.Context(), "web: page failed", "path", r.URL.Path, "err", err)
		if code == kiln.EINTERNAL {
			msg = "internal error; the server log has the details"
		}
	}
	s.render(w, r, api.HTTPStatus(code), "error", page{Title: title, Error: msg})
}

// toSignIn sends a visitor without a session to the sign-in page, and back
// to where they were going afterwards.
func (s *Server) toSignIn(w http.ResponseWriter, r *http.Request) {
	http.Redirect(w, r, Prefix+"signin?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
}

// localNext returns next when it is a dashboard path on this server, else
// the fleet report: the sign-in form never redirects elsewhere.
func localNext(next string) string {
	if !strings.HasPrefix(next, Prefix) || strings.ContainsAny(next, "\\\r\n") || strings.HasPrefix(next, "//") {
		return Prefix + "fleet"
	}
	return next
}

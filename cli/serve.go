package cli

import (
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

func (a *App) serveCmd() *cobra.Command {
	var opts ServeOptions
	var work string
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (OpenAPI at /openapi.json) until interrupted",
		Long: "Serves kiln's HTTP API. Every operation but /healthz and /openapi.* needs an API token " +
			"(`kiln token create NAME --role ROLE`). It listens on 127.0.0.1 unless told otherwise; any other " +
			"address needs --tls-cert and --tls-key (docs/security.md).\n\n" +
			"--work says what else this server does: pipelines (claim queued pipeline runs, resume interrupted ones, " +
			"run the triggers and schedules), rollouts (rollouts asked for through the API, services' front ends, " +
			"the follower and the autopilot), both (pipelines,rollouts), or none (the API and the dashboard only). " +
			"Without --work it does both when its machine can run instances (root, systemd-nspawn), else none. " +
			"Every server takes check-ins, syncs advisory sources, sends webhooks and signs audit checkpoints " +
			"(docs/deployment.md).",
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkListen(opts); err != nil {
				return err
			}
			if err := checkPublicURL(opts.PublicURL); err != nil {
				return err
			}
			if err := checkTicks(opts); err != nil {
				return err
			}
			if cmd.Flags().Changed("work") {
				w, err := ParseServeWork(work)
				if err != nil {
					return err
				}
				opts.Work = w
			}
			return a.Serve(cmd.Context(), a.cfg, a.Logger(), opts)
		},
	}
	f := c.Flags()
	f.StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "address to listen on; other than loopback it needs --tls-cert and --tls-key")
	f.StringVar(&opts.TLSCert, "tls-cert", "", "PEM certificate (chain) file to serve HTTPS with")
	f.StringVar(&opts.TLSKey, "tls-key", "", "PEM private key file of --tls-cert")
	f.BoolVar(&opts.InsecureListen, "insecure-listen", false, "allow a non-loopback address without TLS (tokens then cross the network in clear text; never in production)")
	f.Float64Var(&opts.CheckinRate, "checkin-rate", 0, "check-ins allowed per agent token and second (0: 50, negative: no limit)")
	f.BoolVar(&opts.SecureCookies, "secure-cookies", false, "mark the dashboard's session cookie Secure although kiln serves plain HTTP: set it when a proxy in front terminates TLS")
	f.BoolVar(&opts.SecureCookies, "behind-tls-proxy", false, "the same as --secure-cookies")
	f.DurationVar(&opts.AuditCheckpointEvery, "audit-checkpoint-every", 10*time.Minute, "sign a checkpoint of the audit log's head this often when it moved (0: never); `kiln audit verify` checks the log against them")
	f.StringVar(&opts.AuditCheckpointFile, "audit-checkpoint-file", "", "also append each signed audit checkpoint to this file (JSON lines), kept outside the database; give it to `kiln audit verify --checkpoints`")
	f.DurationVar(&opts.FollowEvery, "follow-every", 10*time.Second, "look this often for channel moves and roll following services out within their policy (0: never; docs/rollout.md)")
	// How often the background loops look for work; hidden, for tests and
	// demonstrations that cannot wait minutes (docs/patching.md).
	f.DurationVar(&opts.TriggerEvery, "trigger-every", time.Minute, "look this often for changes that trigger pipeline runs and for due schedules")
	f.DurationVar(&opts.SourcesEvery, "sources-every", time.Minute, "look this often for advisory sources whose interval has passed")
	f.DurationVar(&opts.AutopilotEvery, "autopilot-every", 5*time.Minute, "check this often for advisories that make the autopilot refresh an environment (besides after every sync that changed a source)")
	for _, name := range []string{"trigger-every", "sources-every", "autopilot-every"} {
		_ = f.MarkHidden(name)
	}
	f.StringVar(&opts.Estate, "estate", "", "estate (directory, or name of a registered estate) whose environments' config blocks the services' rollouts launch with; default: $KILN_ESTATE, else the registered estate (`kiln estate add`) that defines the service's image")
	f.StringVar(&work, "work", "", "what this server does besides the API and the dashboard: pipelines, rollouts, both comma-separated, or none; "+
		"default: both when this machine can run instances, else none (docs/deployment.md)")
	f.StringVar(&opts.PublicURL, "public-url", "", "URL clients reach this server at (e.g. https://kiln.example.com behind a proxy), named as the server in /openapi.json; default: derived from --listen")
	return c
}

// ServeWork is what a kiln serve does besides the API and the dashboard
// (--work). Every server also takes check-ins, syncs advisory sources,
// sends webhooks, applies scheduled revocations and signs audit
// checkpoints: those only touch the database.
type ServeWork struct {
	// Given is set when --work was given: the server then refuses to start
	// when its machine cannot do the work named. Unset, it does both kinds
	// when its machine can run instances, and neither otherwise.
	Given bool
	// Pipelines: claim queued pipeline runs (every stage: build, test,
	// scan, delivery), resume interrupted ones, and run the triggers and
	// cron schedules that queue runs.
	Pipelines bool
	// Rollouts: rollouts asked for through the API, services' front ends,
	// the follower (channel moves) and the autopilot's refreshes.
	Rollouts bool
}

// ParseServeWork reads --work: "pipelines", "rollouts", both
// comma-separated (in either order), or "none".
func ParseServeWork(s string) (ServeWork, error) {
	w := ServeWork{Given: true}
	bad := func(format string, args ...any) (ServeWork, error) {
		return ServeWork{}, kiln.FieldErrorf(kiln.EINVALID, "--work", format+"; give pipelines (a builder), rollouts (an instance host), pipelines,rollouts, or none (an API and dashboard server)", args...)
	}
	if strings.TrimSpace(s) == "none" {
		return w, nil
	}
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if seen[part] {
			return bad("%q is named twice in %q", part, s)
		}
		seen[part] = true
		switch part {
		case "pipelines":
			w.Pipelines = true
		case "rollouts":
			w.Rollouts = true
		case "none":
			return bad("none cannot be combined with other work in %q", s)
		case "":
			return bad("%q has an empty item", s)
		default:
			return bad("unknown work %q in %q", part, s)
		}
	}
	return w, nil
}

// String is the --work value that gives w ("none" when it does neither).
func (w ServeWork) String() string {
	switch {
	case w.Pipelines && w.Rollouts:
		return "pipelines,rollouts"
	case w.Pipelines:
		return "pipelines"
	case w.Rollouts:
		return "rollouts"
	}
	return "none"
}

// Describe says in one sentence what a server with this work does, for
// its log at start.
func (w ServeWork) Describe() string {
	var does, not []string
	if w.Pipelines {
		does = append(does, "claims queued pipeline runs, resumes interrupted ones and runs the pipeline triggers and schedules")
	} else {
		not = append(not, "claims no pipeline runs and runs no triggers or schedules (queued runs wait for a server with --work pipelines)")
	}
	if w.Rollouts {
		does = append(does, "runs rollouts, services' front ends, the follower and the autopilot")
	} else {
		not = append(not, "runs no rollouts, front ends, follower or autopilot (the API answers 503 for rollouts)")
	}
	out := "serves the API and the dashboard"
	if len(does) > 0 {
		out += ", " + strings.Join(does, ", and ")
	}
	if len(not) > 0 {
		out += "; it " + strings.Join(not, ", and ")
	}
	return out
}

// checkTicks refuses a background loop interval that is not positive.
func checkTicks(opts ServeOptions) error {
	for _, t := range []struct {
		flag string
		d    time.Duration
	}{{"--trigger-every", opts.TriggerEvery}, {"--sources-every", opts.SourcesEvery}, {"--autopilot-every", opts.AutopilotEvery}} {
		if t.d <= 0 {
			return kiln.FieldErrorf(kiln.EINVALID, t.flag, "%s is not a positive interval; e.g. %s 1m", t.d, t.flag)
		}
	}
	return nil
}

// isLoopback reports whether host names only this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// checkListen refuses to serve bearer tokens in clear text over a network:
// an address other than loopback needs TLS, unless --insecure-listen says
// the network is trusted. Authentication is always on, whatever the
// address.
func checkListen(opts ServeOptions) error {
	host, _, err := net.SplitHostPort(opts.Listen)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, "--listen", "%q is not HOST:PORT: %v", opts.Listen, err)
	}
	if (opts.TLSCert == "") != (opts.TLSKey == "") {
		return kiln.FieldErrorf(kiln.EINVALID, "--tls-cert", "give both --tls-cert and --tls-key, or neither")
	}
	if isLoopback(host) || opts.TLSCert != "" || opts.InsecureListen {
		return nil
	}
	return kiln.FieldErrorf(kiln.EINVALID, "--listen",
		"%s is not a loopback address and no TLS certificate is given: API tokens would cross the network in clear text; "+
			"add --tls-cert FILE --tls-key FILE, listen on 127.0.0.1 behind a TLS proxy, or (on a trusted network only) pass --insecure-listen", opts.Listen)
}

// checkPublicURL accepts an absolute http(s) URL without credentials,
// query or fragment.
func checkPublicURL(s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return kiln.FieldErrorf(kiln.EINVALID, "--public-url",
			"%q is not an absolute http:// or https:// URL without credentials, query or fragment; write it as clients reach the server, e.g. https://kiln.example.com", s)
	}
	return nil
}

// APIURL is the URL the OpenAPI document names as the server: --public-url
// if given, else the --listen address with http or https. Empty when
// --listen names no single host (0.0.0.0, ::): clients then resolve the
// document's relative server against where they fetched it.
func (o ServeOptions) APIURL() string {
	if o.PublicURL != "" {
		return strings.TrimSuffix(o.PublicURL, "/")
	}
	host, port, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return ""
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		return ""
	}
	scheme := "http"
	if o.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

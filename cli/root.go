package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/sign"
)

// Config is what the global flags say.
type Config struct {
	DataDir  string
	Database string
	// SigningKey is the ed25519 key that signs provenance; empty means
	// DataDir/keys/signing.key, created on first use.
	SigningKey string
	Output     string
	Verbose    bool
	// Server, when set, is the kiln server (https://HOST:PORT) the
	// commands work through instead of opening the database.
	Server string
	// AllowHTTP lets the client send its token over plain http:// to a
	// server that is not loopback (--allow-http, KILN_ALLOW_HTTP=1).
	AllowHTTP bool
	// Artifacts is where artifacts live: empty for the local directory
	// under DataDir, or oci://HOST[:PORT]/REPOSITORY (--artifacts,
	// KILN_ARTIFACTS). ArtifactsCA, ArtifactsCredentials and
	// ArtifactsPlainHTTP say how to reach the registry.
	Artifacts            string
	ArtifactsCA          string
	ArtifactsCredentials string
	ArtifactsPlainHTTP   bool
	// LayerCompression is how builds compress the layers they store:
	// gzip (empty, the default) or zstd (--layer-compression,
	// KILN_LAYER_COMPRESSION).
	LayerCompression string
	// BootstrapOnDisk makes fresh bakes bootstrap on the data
	// directory's disk even when the machine has the memory for a tmpfs
	// (--bootstrap-on-disk, KILN_BOOTSTRAP_ON_DISK=1).
	BootstrapOnDisk bool
}

// Services are what the commands work with: the stores, this machine's
// platform and signing key, and the use cases on them, each built once by
// cmd/kiln (the one place that knows concrete types). A field is nil when
// the services do not provide it (through --server there is no platform,
// builder or signing key); the commands that need one say so. Close
// releases them.
type Services struct {
	Registry kiln.Registry
	// Artifacts is the artifact store: the local directory, or the OCI
	// registry read through it (the local copy is a verified cache).
	Artifacts kiln.ArtifactStore
	// Images is the OCI registry artifacts live in (nil: the local
	// directory alone); ArtifactGC deletes what no version needs.
	Images     ArtifactRegistry
	ArtifactGC ArtifactCollector
	// Tokens and Audit are the token store and audit log.
	Tokens kiln.TokenStore
	Audit  kiln.AuditLog
	// Checkpoints are the audit log's signed checkpoints.
	Checkpoints kiln.AuditCheckpoints
	// Estates are the estates the server may run (`kiln estate`); nil
	// through --server.
	Estates kiln.EstateStore
	// DataDir is where work files live (build directories, step cache).
	DataDir string
	// Platform runs instances (the local nspawn driver by default).
	Platform kiln.Platform
	// Drift shows what an instance changed in itself, on the platform
	// that holds it (the local one compares its overlay with the image,
	// the vm one asks inside the guest); nil: no platform here.
	Drift func(ctx context.Context, inst *kiln.Instance, manifest []kiln.Package) (*kiln.Drift, error)
	// Inventory records instances.
	Inventory kiln.Inventory
	// Signer signs provenance; its public key verifies it.
	Signer *sign.Signer
	// Reconcile, when set, brings the inventory in line with what the
	// platform sees (crashed or vanished instances); nil does nothing.
	Reconcile func(ctx context.Context) error
	// Fleet counts the estate; Advisories keeps advisories.
	Fleet      kiln.Fleet
	Advisories kiln.AdvisoryStore
	// AdvisorySources keeps the advisory sources kiln serve syncs (nil
	// through --server).
	AdvisorySources kiln.AdvisorySourceStore
	// Pipeline keeps runs (the job queue), channels, webhooks and
	// schedule firings.
	Pipeline PipelineStore
	// ServiceStore and RolloutStore keep services, their instances and
	// rollouts; Channels gives a rollout's default version.
	ServiceStore kiln.ServiceStore
	RolloutStore kiln.RolloutStore
	Channels     kiln.ChannelStore
	// Pauses keep what the autopilot leaves alone.
	Pauses kiln.PauseStore
	// Revoker revokes versions through ancestry and keeps scheduled
	// revocations; nil through --server.
	Revoker kiln.Revoker
	// Reproductions keeps the rebuild checks of versions (`kiln version
	// rebuild --check`); nil through --server.
	Reproductions kiln.Reproductions
	// RunStarter queues runs on a kiln server (--server).
	RunStarter kiln.RunStarter
	// Signing is a kiln server's provenance signing key and envelopes
	// (--server).
	Signing RemoteSigning

	// Builder makes candidate versions.
	Builder *build.Builder
	// Launcher launches instances of verified versions.
	Launcher *launch.Launcher
	// Runner is the pipeline runner, Tester the test stage, each printing
	// its live log on progress (nil: none).
	Runner func(progress io.Writer) *pipeline.Runner
	Tester func(progress io.Writer) *pipeline.Tester
	// Checker tells whether an estate's images are up to date; packages
	// also compares installed packages with the mirror's index.
	Checker func(packages bool) *pipeline.Checker
	// Rollouts is where rollouts run and front ends live: this machine
	// (progress receives a local rollout's lines) or the kiln server.
	Rollouts func(progress io.Writer) RolloutHost

	Close func() error
}

// RolloutHost runs rollouts and keeps services' front ends.
type RolloutHost interface {
	kiln.RolloutStarter
	kiln.ServiceHost
}

// App is the CLI's view of the outside world, provided by cmd/kiln.
type App struct {
	Stdout io.Writer
	Stderr io.Writer
	Stdin  io.Reader
	// Open connects to the configured database (or server).
	Open func(ctx context.Context, cfg Config, logger *slog.Logger) (*Services, error)
	// Serve runs the HTTP API until ctx ends.
	Serve func(ctx context.Context, cfg Config, logger *slog.Logger, opts ServeOptions) error
	// VerifyImage checks a version in an OCI registry without the
	// database (`kiln version verify oci://…`).
	VerifyImage ImageVerifier
	// Extra adds commands that cmd/kiln wires to other packages.
	Extra []func(a *App) *cobra.Command

	cfg Config
	svc *Services
}

// ServeOptions are the flags of `kiln serve`.
type ServeOptions struct {
	Listen string
	// TLSCert and TLSKey are PEM files; both or neither.
	TLSCert, TLSKey string
	// InsecureListen is set when --insecure-listen allowed a non-loopback
	// address without TLS; the server warns in its log (and dashboard).
	InsecureListen bool
	// CheckinRate limits check-ins per token and second (0: default).
	CheckinRate float64
	// SecureCookies marks the dashboard's session cookie Secure although
	// kiln itself serves plain HTTP: a proxy in front terminates TLS.
	SecureCookies bool
	// AuditCheckpointEvery is how often the server signs a checkpoint of
	// the audit log's head (0: never); AuditCheckpointFile, when set, is a
	// file outside the database each checkpoint is appended to (JSON lines).
	AuditCheckpointEvery time.Duration
	AuditCheckpointFile  string
	// PublicURL is where clients reach the API (behind a proxy, say);
	// the OpenAPI document names it as its server.
	PublicURL string
	// FollowEvery is how often the server looks for channel moves to roll
	// following services out to (0: never).
	FollowEvery time.Duration
	// TriggerEvery, SourcesEvery and AutopilotEvery are how often the
	// pipeline triggers, the advisory sources and the autopilot look for
	// work (0: their defaults, 1 min, 1 min and 5 min).
	TriggerEvery, SourcesEvery, AutopilotEvery time.Duration
	// Estate is the estate (directory or registered name) services'
	// rollouts take their configuration from; empty: KILN_ESTATE, else
	// the registered estate that defines the service's image.
	Estate string
	// Work is what the server does besides the API and the dashboard
	// (--work); the zero value does all its machine can.
	Work ServeWork
}

// DefaultDataDir is /var/lib/kiln for root, else $XDG_DATA_HOME/kiln
// (~/.local/share/kiln).
func DefaultDataDir() string {
	if d := os.Getenv("KILN_DATA_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/var/lib/kiln"
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "kiln")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".kiln"
	}
	return filepath.Join(home, ".local", "share", "kiln")
}

// LocalActor names the local user for history entries: "local:alice";
// under sudo, the user who ran sudo as well: "local:root (sudo by alice)".
func LocalActor() string { return localActor(user.Current, os.Getuid(), os.Getenv) }

func localActor(current func() (*user.User, error), uid int, getenv func(string) string) string {
	name := fmt.Sprintf("uid-%d", uid)
	if u, err := current(); err == nil {
		name = u.Username
	}
	// SUDO_USER is set by sudo, which only root can be made by; a user
	// who sets it by hand gains nothing but a longer actor name.
	if by := getenv("SUDO_USER"); by != "" && by != name {
		return "local:" + name + " (sudo by " + by + ")"
	}
	return "local:" + name
}

// Config returns the parsed global flags.
func (a *App) Config() Config { return a.cfg }

// Logger returns the logger for diagnostics on stderr.
func (a *App) Logger() *slog.Logger {
	level := slog.LevelWarn
	if a.cfg.Verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(a.Stderr, &slog.HandlerOptions{Level: level}))
}

// Services opens the configured services once per process.
func (a *App) Services(ctx context.Context) (*Services, error) {
	if a.svc != nil {
		return a.svc, nil
	}
	svc, err := a.Open(ctx, a.cfg, a.Logger())
	if err != nil {
		return nil, err
	}
	a.svc = svc
	return svc, nil
}

func (a *App) registry(cmd *cobra.Command) (kiln.Registry, error) {
	s, err := a.Services(cmd.Context())
	if err != nil {
		return nil, err
	}
	return s.Registry, nil
}

// Root builds the command tree.
func (a *App) Root() *cobra.Command {
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Bake, test, version and track server images",
		Long:          "kiln bakes server images from real sources, versions them, tests each on a temporary instance booted from the final image, promotes them, and tracks which servers run which version.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			// Processes kiln starts (instance supervisors, service front
			// ends) run from other directories: hand them an absolute path.
			if a.cfg.DataDir != "" {
				abs, err := filepath.Abs(a.cfg.DataDir)
				if err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--data-dir", "%v", err)
				}
				a.cfg.DataDir = abs
			}
			cmd.SetContext(kiln.WithActor(cmd.Context(), LocalActor()))
			return a.checkRemote(cmd)
		},
	}
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	root.SetIn(a.Stdin)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.cfg.DataDir, "data-dir", DefaultDataDir(), "directory for kiln's database, artifacts and work files (env KILN_DATA_DIR)")
	pf.StringVar(&a.cfg.Database, "database", os.Getenv("KILN_DATABASE"), "database URL: empty for SQLite under --data-dir, sqlite:PATH, or postgres://… (env KILN_DATABASE)")
	pf.StringVar(&a.cfg.SigningKey, "signing-key", os.Getenv("KILN_SIGNING_KEY"), "ed25519 key (PKCS#8 PEM, mode 0600) that signs provenance; default DATA-DIR/keys/signing.key, created on first use (env KILN_SIGNING_KEY)")
	pf.StringVarP(&a.cfg.Output, "output", "o", FormatTable, "output format of listings: table or json")
	pf.BoolVarP(&a.cfg.Verbose, "verbose", "v", false, "print debug logs and live output of long steps")
	pf.StringVar(&a.cfg.Server, "server", os.Getenv("KILN_SERVER"), "work through the kiln server at this URL (https://HOST:PORT) with the token in KILN_TOKEN or ~/.config/kiln/token, instead of the database (env KILN_SERVER)")
	pf.BoolVar(&a.cfg.AllowHTTP, "allow-http", os.Getenv("KILN_ALLOW_HTTP") == "1", "with --server, send the token over plain http:// to a server that is not loopback (it crosses the network in clear text; env KILN_ALLOW_HTTP=1)")

	root.AddCommand(a.imageCmd(), a.versionCmd(), a.serveCmd(), a.validateCmd(), a.buildCmd(), a.testCmd(), a.keyCmd(), a.runCmd(), a.runsCmd(), a.approveCmd(), a.promoteCmd(), a.channelCmd(), a.statusCmd(), a.webhookCmd(), a.tokenCmd(), a.estateCmd(), a.auditCmd(),
		a.instanceCmd(), a.fleetCmd(), a.advisoryCmd(), a.policyCmd(), a.agentCmd())
	pf.StringVar(&a.cfg.Artifacts, "artifacts", os.Getenv("KILN_ARTIFACTS"), "where artifacts live: empty for DATA-DIR/artifacts, or an OCI registry oci://HOST[:PORT]/REPOSITORY, with DATA-DIR/artifacts as its verified local cache (env KILN_ARTIFACTS)")
	pf.StringVar(&a.cfg.ArtifactsCA, "artifacts-ca", os.Getenv("KILN_ARTIFACTS_CA"), "PEM file of CA certificates trusted for the registry's TLS certificate, besides the system's (env KILN_ARTIFACTS_CA)")
	pf.StringVar(&a.cfg.ArtifactsCredentials, "artifacts-credentials", os.Getenv("KILN_ARTIFACTS_CREDENTIALS"), "registry credentials file in Docker's config.json format; default ~/.docker/config.json, else anonymous (env KILN_ARTIFACTS_CREDENTIALS)")
	pf.BoolVar(&a.cfg.ArtifactsPlainHTTP, "artifacts-plain-http", os.Getenv("KILN_ARTIFACTS_PLAIN_HTTP") == "1", "talk plain HTTP to a registry that is not on loopback (a trusted network; loopback registries may use it without this; env KILN_ARTIFACTS_PLAIN_HTTP=1)")

	pf.StringVar(&a.cfg.LayerCompression, "layer-compression", os.Getenv("KILN_LAYER_COMPRESSION"), "how builds compress the layers they store: gzip (the default; every OCI tool reads it) or zstd (smaller, faster to unpack; env KILN_LAYER_COMPRESSION)")
	pf.BoolVar(&a.cfg.BootstrapOnDisk, "bootstrap-on-disk", os.Getenv("KILN_BOOTSTRAP_ON_DISK") == "1", "fresh bakes bootstrap on the data directory's disk, not in a tmpfs, even when the machine has the memory (env KILN_BOOTSTRAP_ON_DISK=1)")

	root.AddCommand(a.cacheCmd(), a.artifactCmd())
	for _, f := range a.Extra {
		root.AddCommand(f(a))
	}
	a.addInstanceLifecycle(root)
	return root
}

// Run executes the command line and returns the process exit code. Errors are
// printed once, here.
func (a *App) Run(ctx context.Context, args []string) int {
	root := a.Root()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if a.svc != nil && a.svc.Close != nil {
		if cerr := a.svc.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	if err != nil {
		var es *exitStatus
		if errors.As(err, &es) {
			return es.code
		}
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(a.Stderr, "kiln: interrupted")
			return ExitUser
		}
		fmt.Fprintf(a.Stderr, "kiln: %s\n", kiln.ErrorMessage(err))
		code := ExitCode(err)
		if code == ExitUser {
			var ue *usageError
			if errors.As(err, &ue) {
				fmt.Fprintln(a.Stderr, "Run 'kiln --help' or 'kiln COMMAND --help' for usage.")
			}
		}
		return code
	}
	return ExitOK
}

// localOnly lists the commands that work on this machine's builder,
// platform, artifacts or keys, with what they need: with --server they
// refuse before opening anything. "PATH *" stands for every subcommand.
var localOnly = map[string]string{
	"kiln build":             "the builder",
	"kiln test":              "the platform that boots test instances",
	"kiln bench":             "what it measures",
	"kiln serve":             "the database",
	"kiln version diff":      "the artifacts",
	"kiln instance launch":   "the platform",
	"kiln instance exec":     "the instance",
	"kiln instance shell":    "the instance",
	"kiln instance stop":     "the instance",
	"kiln instance destroy":  "the instance",
	"kiln instance drift":    "the instance",
	"kiln fleet drift":       "the instances",
	"kiln fleet mark-lost":   "the database (kiln serve marks lost instances itself)",
	"kiln __service-proxy":   "the database (it is the front end kiln starts there)",
	"kiln cache *":           "the build cache",
	"kiln artifact *":        "the artifact store",
	"kiln key rotate":        "the signing key",
	"kiln key list":          "the signing key",
	"kiln audit head":        "the database",
	"kiln audit checkpoint":  "the database and the signing key",
	"kiln advisory source *": "the database (kiln serve syncs the sources)",
}

// checkRemote refuses, with --server, a command that must run where the
// things it works on are; the one place that decides it.
func (a *App) checkRemote(cmd *cobra.Command) error {
	if a.cfg.Server == "" {
		return nil
	}
	for c := cmd; c != nil; c = c.Parent() {
		key := c.CommandPath()
		if c != cmd {
			key += " *"
		}
		if what, ok := localOnly[key]; ok {
			return kiln.Errorf(kiln.EINVALID, "`%s` runs on the machine with %s; run it there or without --server", cmd.CommandPath(), what)
		}
	}
	return nil
}

// exactArgs is cobra.ExactArgs with a usage error that names the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{fmt.Errorf("%s needs %s (got %d argument(s))", cmd.CommandPath(), names, len(args))}
		}
		return nil
	}
}

// group returns a command that only holds subcommands; running it with an
// unknown subcommand is a usage error rather than silent help.
func group(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return &usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
}

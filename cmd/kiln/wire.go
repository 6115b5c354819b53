package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/client"
	"github.com/kiln-project/kiln/fleet"
	"github.com/kiln-project/kiln/internal/filedrift"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/platform/vm"
	"github.com/kiln-project/kiln/platform/vm/disk"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/verify"
	"github.com/kiln-project/kiln/web"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// Main holds the process's wiring so tests can start it like the binary.
type Main struct {
	Stdout, Stderr *os.File
}

// NewMain returns wiring for the real process.
func NewMain() *Main { return &Main{Stdout: os.Stdout, Stderr: os.Stderr} }

// App builds the CLI with every concrete implementation plugged in.
func (m *Main) App() *cli.App {
	return &cli.App{
		Stdout: m.Stdout,
		Stderr: m.Stderr,
		Stdin:  os.Stdin,
		Open:   openServices,
		Serve:  serve,
		// No database, no data directory: the registry and the keys.
		VerifyImage: verifyImage,
		Extra:       []func(*cli.App) *cobra.Command{probeCmd, readOnlyExecCmd, superviseCmd, vmSuperviseCmd, vmAgentCmd, fileDriftCmd, benchCmd},
	}
}

// probeCmd is `kiln probe`: the server-test probe that runs inside an
// instance (the kiln binary is bind-mounted there), reading a suite on stdin
// and writing the report on stdout.
func probeCmd(_ *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:    "probe",
		Short:  "Run server tests on this machine (used inside instances)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return verify.RunProbeMain(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout())
		},
	}
}

// readOnlyExecCmd is the read-only diagnostic exec inside an instance
// (`kiln instance exec NAME --read-only -- CMD` runs it there).
func readOnlyExecCmd(_ *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:                verify.ReadOnlyCommand + " -- COMMAND [ARG…]",
		Short:              "Run a command that can read but not change this machine (used inside instances)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			code, err := verify.RunReadOnlyMain(cmd.Context(), args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			os.Exit(code)
			return nil
		},
	}
}

// openDB opens the database with provenance signing switched on: every
// version recorded through it carries its signed provenance. The default
// signing key is created on first use, but not when the database already
// holds signed versions: their key was lost, and a new one would make
// every one of them refuse to launch.
func openDB(ctx context.Context, cfg cli.Config, logger *slog.Logger) (*store.DB, *sign.Signer, error) {
	db, err := store.Open(ctx, cfg.Database, cfg.DataDir, logger, time.Now)
	if err != nil {
		return nil, nil, err
	}
	signer, created, err := sign.LoadOrCreateKeyUnless(cfg.DataDir, cfg.SigningKey, func(path string) error {
		return refuseNewKey(ctx, db, path)
	})
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	if created {
		logger.Warn("created the provenance signing key; back it up and share its public key (kiln key export)", "path", signer.Path(), "key_id", signer.KeyID())
	}
	db.SealVersionsWith(signer.Seal)
	return db, signer, nil
}

// refuseNewKey refuses to create the signing key at path when db holds
// versions signed by a key that is no longer there.
func refuseNewKey(ctx context.Context, db *store.DB, path string) error {
	n, err := db.CountAttachmentsNamed(ctx, sign.EnvelopeAttachment)
	if err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return kiln.Errorf(kiln.ECONFLICT,
		"the signing key %s is missing, but the database holds %d signed version(s): a new key would make every one of them fail to verify and refuse to launch. "+
			"Restore the key file from your backup to %s (mode 0600). If it is lost for good, put its public key (the output of an earlier `kiln key export`) in %s/OLD.pub "+
			"and create the new key with `openssl genpkey -algorithm ed25519 -out %s && chmod 600 %s`; see docs/signing.md",
		path, n, path, filepath.Join(filepath.Dir(filepath.Dir(path)), sign.TrustedKeysDir), path, path)
}

func openServices(ctx context.Context, cfg cli.Config, logger *slog.Logger) (*cli.Services, error) {
	if cfg.Server != "" {
		return openRemote(cfg, logger)
	}
	db, signer, err := openDB(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	g := newGraph(db, signer, cfg, logger)
	if g.noPlatform != nil {
		db.Close()
		return nil, g.noPlatform
	}
	// Leftovers of a build killed without a chance to clean up (kill -9,
	// power cut) are removed now, and the user is told.
	if rep, err := build.Cleanup(ctx, cfg.DataDir, g.local, logger); err != nil {
		logger.Warn("cleanup of interrupted builds failed", "err", err)
	} else if !rep.Empty() {
		logger.Warn("cleaned up after an interrupted build: " + rep.String())
	}
	return g.services(), nil
}

// openRemote returns the services over the API of the server at
// cfg.Server (--server): no database, platform, artifacts or signing key
// here; the commands that need them refuse before they get this far.
func openRemote(cfg cli.Config, logger *slog.Logger) (*cli.Services, error) {
	token, err := client.Token(os.Getenv, client.DefaultCredentialsFile())
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg.Server, token, nil, client.AllowHTTP(cfg.AllowHTTP))
	if err != nil {
		return nil, err
	}
	return &cli.Services{Registry: c, Inventory: c, Fleet: c, Advisories: c, Pipeline: c, DataDir: cfg.DataDir,
		ServiceStore: c, RolloutStore: c, Channels: c, RunStarter: c, Signing: c, Revoker: c, Pauses: c,
		// The server's worker runs the runs: this runner only reads them
		// (its claims are refused).
		Runner: func(progress io.Writer) *pipeline.Runner {
			return &pipeline.Runner{Store: c, Registry: c, Advisories: c, LoadEstate: cli.LoadEstate, Logger: logger, Progress: progress}
		},
		Checker: func(packages bool) *pipeline.Checker {
			return &pipeline.Checker{Registry: c, Runs: c, Packages: packages, CacheDir: filepath.Join(cfg.DataDir, "pipeline")}
		},
		Rollouts: func(io.Writer) cli.RolloutHost { return c },
		Close:    func() error { return nil }}, nil
}

func serve(ctx context.Context, cfg cli.Config, logger *slog.Logger, opts cli.ServeOptions) error {
	db, signer, err := openDB(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer db.Close()
	warnAuditWriters(ctx, db, logger)
	if f := opts.AuditCheckpointFile; f != "" {
		// A file kiln cannot append to stops the start, not the first checkpoint.
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, "--audit-checkpoint-file", "cannot append audit checkpoints to %s: %v", f, err)
		}
		fh.Close()
	}
	// Signed checkpoints of the audit log's head; stopped before db closes.
	stopCheckpoints := startAuditCheckpoints(ctx, db, signer, opts.AuditCheckpointEvery, opts.AuditCheckpointFile, logger)
	defer stopCheckpoints()
	// Check-ins share transactions (group commit); instances silent for a
	// day are marked lost every 10 minutes. Both stop before db closes.
	checkins := fleet.NewBatcher(db, 256)
	defer checkins.Close()
	lostCtx, stopLost := context.WithCancel(ctx)
	lostDone := make(chan struct{})
	go func() {
		defer close(lostDone)
		fleet.New(db, db).RunMarkLost(lostCtx, 24*time.Hour, 10*time.Minute, logger)
	}()
	defer func() { stopLost(); <-lostDone }()
	kick := make(autopilotKick, 1)
	defer startAdvisorySources(ctx, db, cfg, logger, opts.SourcesEvery, kick.synced)() // advisory sources kept current; stopped before db closes
	// The use cases on db, and on this machine's platform if it can run
	// instances.
	g := newGraph(db, signer, cfg, logger)
	if g.badArtifacts != nil {
		return g.badArtifacts
	}
	if opts.Estate != "" {
		g.estate = opts.Estate
	}
	if g.estate != "" {
		// A broken estate stops the start, not the first rollout.
		if _, err := cli.ServiceConfig(g.estate, db)(ctx, &kiln.Service{}); err != nil {
			return fmt.Errorf("--estate %s: %w", g.estate, err)
		}
	}
	defer startHistory(ctx, db, logger)()                      // daily fleet counts for the dashboard's trends
	defer startRevocations(ctx, db, revocationEvery, logger)() // scheduled revocations applied when due; stopped before db closes
	// What this server does besides the API (--work), said in its log.
	work, err := serveWork(opts.Work, g)
	if err != nil {
		return err
	}
	logWork(logger, work, g)
	// Webhooks, and the pipeline worker, triggers and schedules; stopped
	// before db closes.
	pipeCtx, stopPipeline := context.WithCancel(ctx)
	waitPipeline := startPipeline(pipeCtx, g, work.Pipelines, opts.TriggerEvery)
	defer func() { stopPipeline(); waitPipeline() }()
	// Rollouts and front ends on this machine; rollouts stop (resumable)
	// before db closes: the wait covers every rollout or service removal
	// a request began, even one still starting its front end.
	rollCtx, stopRollouts := context.WithCancel(ctx)
	var rollouts api.RolloutHost // nil: the API answers 503 for rollouts
	waitRollouts := func() {}
	if work.Rollouts {
		rollouts, waitRollouts = startRollouts(rollCtx, g, opts.FollowEvery)
	}
	defer func() { stopRollouts(); waitRollouts() }()
	// Automatic refresh (refresh { auto = true }); stopped before the rollouts.
	autoCtx, stopAuto := context.WithCancel(rollCtx)
	waitAuto := startAutopilot(autoCtx, g, rollouts, kick, opts.AutopilotEvery)
	defer func() { stopAuto(); waitAuto() }()
	apiHandler := api.New(api.Config{Logger: logger, Version: version, PublicURL: opts.APIURL(),
		CheckinRate: opts.CheckinRate, Checkins: checkins, Status: pipelineStatus(g),
		StartRuns: runStarter{runs: db, estates: db}, Rollouts: rollouts, SigningKey: signer.Public(), FollowStatus: apiFollowStatus(db), Artifacts: g.arts}.WithStores(db))
	// Refusals folded in memory reach the audit log after the HTTP server
	// has stopped and before db closes.
	defer apiHandler.Close()
	// The dashboard under /ui/, next to the API; its session cookie is
	// Secure when kiln serves TLS or a TLS proxy is in front (--secure-cookies).
	dashboard, err := web.New(web.Config{Registry: db, Inventory: db, Fleet: db, Advisories: db, AdvisorySources: db, Runs: db, Tokens: db, Channels: db,
		History: db, Services: db, Rollouts: db, Timeline: db, Reproductions: db, Pauses: db, AutoRefresh: dashboardAutoRefresh(db, logger), FollowStatus: dashboardFollowStatus(db),
		Logger: logger, Version: version,
		Secure: opts.TLSCert != "" || opts.SecureCookies, InsecureListen: opts.InsecureListen && opts.TLSCert == ""})
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           web.Mount(dashboard, apiHandler),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if opts.TLSCert != "" {
		// Load now so a bad file stops the start with a clear message.
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return kiln.FieldErrorf(kiln.EINVALID, "--tls-cert", "cannot load the TLS certificate %s and key %s: %v; give PEM files of a matching pair",
				opts.TLSCert, opts.TLSKey, err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	}
	if opts.InsecureListen && opts.TLSCert == "" {
		logger.Warn("kiln serve: --insecure-listen: serving the API without TLS; API tokens cross the network in clear text", "addr", opts.Listen)
	}
	if toks, err := db.ListTokens(ctx); err == nil && len(toks) == 0 {
		logger.Warn("kiln serve: no API tokens exist yet, so only /healthz and /openapi.json answer; create one with `kiln token create NAME --role admin`")
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return err
	}
	if srv.TLSConfig != nil {
		ln = tls.NewListener(ln, srv.TLSConfig)
	}
	logger.Info("kiln serve: listening", "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
		shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(shutCtx)
	}
}

// superviseCmd is `kiln __supervise`: the per-instance supervisor process
// the local platform starts (it owns systemd-nspawn and the port
// forwarders, and outlives the CLI that launched the instance). File
// descriptors 3 and 4 are its lock and readiness pipe: nothing on this path
// may close them.
func superviseCmd(_ *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:                "__supervise",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			os.Exit(local.SupervisorMain(args))
			return nil
		},
	}
}

// vmSuperviseCmd is `kiln __vm-supervise`: the per-instance supervisor
// process the VM platform starts (it owns QEMU and the exec socket, and
// outlives the CLI that launched the instance). File descriptors 3 and 4
// are its lock and readiness pipe, as for __supervise.
func vmSuperviseCmd(_ *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:                "__vm-supervise",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			os.Exit(vm.SupervisorMain(args))
			return nil
		},
	}
}

// vmAgentCmd is `kiln __vm-agent`: the guest side of the VM platform's
// exec channel, run inside a VM by the unit the disk builder installs
// (kiln-vm-agent.service) on the virtio-serial port.
func vmAgentCmd(_ *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:                disk.AgentCommand,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			os.Exit(vm.AgentMain(args))
			return nil
		},
	}
}

// fileDriftCmd is `kiln __file-drift`: run inside a VM by the platform's
// drift check, it compares the guest's files with the image manifest the
// host hands it on stdin (internal/filedrift).
func fileDriftCmd(_ *cli.App) *cobra.Command {
	return &cobra.Command{
		Use:                filedrift.GuestCommand,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			os.Exit(filedrift.GuestMain(cmd.Context(), args, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr()))
			return nil
		},
	}
}

// agentBinary is this kiln executable, installed in built images as the
// check-in agent; set KILN_NO_AGENT=1 to build images without it.
func agentBinary(logger *slog.Logger) string {
	if os.Getenv("KILN_NO_AGENT") == "1" {
		return ""
	}
	exe, err := os.Executable()
	if err != nil {
		logger.Warn("images will not get the check-in agent", "err", err)
		return ""
	}
	return exe
}

package main

import (
	"crypto"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/rollout"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// graph is every object kiln builds on one database, signing key,
// artifact store and platform, built once per process: the CLI gets its
// services from it (services), kiln serve its pipeline worker, rollout
// host and status checker.
type graph struct {
	cfg    cli.Config
	logger *slog.Logger
	db     *store.DB
	signer *sign.Signer
	// arts and plat are nil when this machine cannot run instances
	// (noPlatform says why); so are launcher and builder then.
	arts       *artifact.Store
	plat       *local.Platform
	noPlatform error
	// launcher launches verified versions on plat, recording instances in db.
	launcher *launch.Launcher
	builder  *build.Builder
}

// newGraph wires the use cases on db and the signing key, and on the
// artifact store and local platform of cfg.DataDir when they open.
func newGraph(db *store.DB, signer *sign.Signer, cfg cli.Config, logger *slog.Logger) *graph {
	g := &graph{cfg: cfg, logger: logger, db: db, signer: signer}
	arts, err := artifact.Open(cfg.DataDir)
	var plat *local.Platform
	if err == nil {
		plat, err = local.New(local.Config{DataDir: cfg.DataDir, Artifacts: arts, Logger: logger})
	}
	if err != nil {
		g.noPlatform = err
		return g
	}
	return g.on(arts, plat)
}

// on wires the launcher and the builder on arts and plat.
func (g *graph) on(arts *artifact.Store, plat *local.Platform) *graph {
	g.arts, g.plat = arts, plat
	g.launcher = &launch.Launcher{Registry: g.db, Platform: plat, Inventory: g.db, Key: g.signer.Public(), Trusted: trusted(g.signer), Logger: g.logger, Audit: g.db}
	g.builder = &build.Builder{Registry: g.db, Artifacts: arts, DataDir: g.cfg.DataDir, Logger: g.logger, Clock: time.Now, AgentBinary: agentBinary(g.logger)}
	if g.signer != nil {
		g.builder.SBOM = g.signer
	}
	return g
}

// trusted are the keys besides the signer's own whose signatures verify
// (keys rotated out with `kiln key rotate`).
func trusted(s *sign.Signer) []crypto.PublicKey {
	var keys []crypto.PublicKey
	for _, t := range s.Trusted() {
		keys = append(keys, t.Key)
	}
	return keys
}

// tester is the test stage, printing on progress (nil: nothing).
func (g *graph) tester(progress io.Writer) *pipeline.Tester {
	return &pipeline.Tester{Registry: g.db, Artifacts: g.arts, Launcher: g.launcher, Logger: g.logger, Progress: progress}
}

// runner is the pipeline runner on db, printing its log on progress too
// (nil: only into the runs' logs).
func (g *graph) runner(progress io.Writer) *pipeline.Runner {
	return &pipeline.Runner{Store: g.db, Registry: g.db, Builder: g.builder, Tester: g.tester(nil), Advisories: g.db,
		LoadEstate: cli.LoadEstate, Logger: g.logger, Progress: progress}
}

// checker says whether images are up to date.
func (g *graph) checker(packages bool) *pipeline.Checker {
	return &pipeline.Checker{Registry: g.db, Runs: g.db, Packages: packages, CacheDir: filepath.Join(g.cfg.DataDir, "pipeline")}
}

// rolloutHost runs rollouts on this machine's platform, printing a
// rollout's lines on progress when it runs in the caller's process.
func (g *graph) rolloutHost(progress io.Writer) *rollout.Host {
	e := &rollout.Engine{Services: g.db, Rollouts: g.db, Timeline: g.db, Registry: g.db, Launcher: g.launcher, Logger: g.logger, Progress: progress,
		Config: cli.ServiceConfig(os.Getenv("KILN_ESTATE"))}
	return &rollout.Host{Engine: e, Channels: g.db, DataDir: g.cfg.DataDir, FrontEnd: cli.FrontEndCommand(g.cfg)}
}

// services are the CLI's services on this machine.
func (g *graph) services() *cli.Services {
	db := g.db
	return &cli.Services{Registry: db, Artifacts: g.arts, Tokens: db, Audit: db, Checkpoints: db, Estates: db, DataDir: g.cfg.DataDir,
		Platform: g.plat, Overlays: g.plat, Inventory: db, Signer: g.signer, Reconcile: reconcileLocal(g.plat, db),
		Fleet: db, Advisories: db, AdvisorySources: db, Pipeline: db, ServiceStore: db, RolloutStore: db, Channels: db, Revoker: db, Reproductions: db,
		Builder: g.builder, Launcher: g.launcher, Runner: g.runner, Tester: g.tester, Checker: g.checker,
		Rollouts: func(progress io.Writer) cli.RolloutHost { return g.rolloutHost(progress) },
		Close:    db.Close}
}

package main

import (
	"context"
	"crypto"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/platform/set"
	"github.com/kiln-project/kiln/platform/vm"
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
	// arts is the artifact store: the local directory (local), or the
	// OCI registry read through it (images is then set). arts and plat
	// are nil when this machine cannot run instances (noPlatform says
	// why); so are launcher and builder then.
	arts       kiln.ArtifactStore
	local      *artifact.Store
	images     *ociArtifacts
	plat       *local.Platform
	noPlatform error
	// badArtifacts is set when --artifacts and its flags are wrong: every
	// command that opens the services fails with it.
	badArtifacts error
	// plats are this machine's platforms by name ("local", the default,
	// and "vm", opened on first use), routing each instance to the one
	// that holds it.
	plats *set.Set
	// launcher launches verified versions on plats, recording instances in db.
	launcher *launch.Launcher
	builder  *build.Builder
	// estate is where services' configuration is declared (a directory
	// or a registered estate's name; KILN_ESTATE, or kiln serve --estate);
	// empty: the registered estate that defines the service's image.
	estate string
}

// newGraph wires the use cases on db and the signing key, and on the
// artifact store and local platform of cfg.DataDir when they open.
func newGraph(db *store.DB, signer *sign.Signer, cfg cli.Config, logger *slog.Logger) *graph {
	g := &graph{cfg: cfg, logger: logger, db: db, signer: signer, estate: os.Getenv("KILN_ESTATE")}
	if _, err := layer.ParseCompression("--layer-compression", cfg.LayerCompression); err != nil {
		g.noPlatform = err
		return g
	}
	lstore, arts, images, err := openArtifacts(cfg, db, logger)
	if err != nil {
		g.noPlatform, g.badArtifacts = err, err
		return g
	}
	g.local, g.images = lstore, images
	// A launch takes the layers a build left in the step cache as hard
	// links (each checked against its diff ID) instead of unpacking them.
	trees := &build.Trees{DataDir: cfg.DataDir, Logger: logger}
	plat, err := local.New(local.Config{DataDir: cfg.DataDir, Artifacts: arts, Logger: logger, Trees: trees})
	if err != nil {
		g.noPlatform = err
		return g
	}
	return g.on(arts, plat)
}

// on wires the platforms, the launcher and the builder on arts and the
// local platform plat.
func (g *graph) on(arts kiln.ArtifactStore, plat *local.Platform) *graph {
	g.arts, g.plat = arts, plat
	g.plats = g.platforms(arts, plat)
	g.launcher = &launch.Launcher{Registry: g.db, Platform: g.plats, Inventory: g.db, Key: g.signer.Public(), Trusted: trusted(g.signer), Logger: g.logger, Audit: g.db}
	// With the registry, a version's content is pushed as it is
	// registered (publishing), before the record names it.
	var reg kiln.Registry = g.db
	if g.images != nil {
		reg = &publishing{Registry: g.db, images: g.images, leases: g.db}
	}
	g.builder = &build.Builder{Registry: reg, Artifacts: arts, DataDir: g.cfg.DataDir, Logger: g.logger, Clock: time.Now, AgentBinary: agentBinary(g.logger)}
	g.builder.DiskBootstrap = g.cfg.BootstrapOnDisk
	g.builder.LayerCompression, _ = layer.ParseCompression("--layer-compression", g.cfg.LayerCompression) // checked by newGraph
	if g.signer != nil {
		g.builder.SBOM = g.signer
	}
	return g
}

// platforms are the local platform (the default) and the VM platform,
// which is opened, and its tools looked for, only when an instance asks
// for it.
func (g *graph) platforms(arts kiln.ArtifactStore, loc *local.Platform) *set.Set {
	var inv set.Instances
	if g.db != nil {
		inv = g.db
	}
	s, err := set.New(inv,
		set.Driver{Name: "local", Open: func() (kiln.Platform, error) {
			if loc == nil {
				return nil, kiln.Errorf(kiln.EUNAVAILABLE, "no local platform on this machine")
			}
			return loc, nil
		}},
		set.Driver{Name: "vm", Open: func() (kiln.Platform, error) {
			if arts == nil {
				return nil, kiln.Errorf(kiln.EUNAVAILABLE, "no artifact store on this machine")
			}
			p, err := vm.New(vm.Config{DataDir: g.cfg.DataDir, Artifacts: arts, Logger: g.logger})
			if err != nil {
				return nil, err
			}
			return p, nil
		}})
	if err != nil {
		panic(err) // the drivers above are named once each
	}
	return s
}

// drift compares an instance with its image on the platform that holds
// it: the local platform's overlay against the image's root filesystem,
// or, on the VM platform, files, packages and credentials asked inside
// the guest.
func (g *graph) drift(ctx context.Context, inst *kiln.Instance, manifest []kiln.Package) (*kiln.Drift, error) {
	p, err := g.plats.For(ctx, inst.ID)
	if err != nil {
		return nil, err
	}
	switch p := p.(type) {
	case *local.Platform:
		return rollout.CompareInstance(ctx, p, inst.ID, manifest)
	case *vm.Platform:
		return rollout.CompareGuest(ctx, p, inst.ID, manifest)
	}
	return nil, kiln.Errorf(kiln.EUNAVAILABLE, "the %s platform does not show what an instance changed", p.Name())
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
		LoadEstate: cli.LoadEstate, Logger: g.logger, Progress: progress, Parallel: 2}
}

// checker says whether images are up to date.
func (g *graph) checker(packages bool) *pipeline.Checker {
	return &pipeline.Checker{Registry: g.db, Runs: g.db, Packages: packages, CacheDir: filepath.Join(g.cfg.DataDir, "pipeline")}
}

// rolloutHost runs rollouts on this machine's platform, printing a
// rollout's lines on progress when it runs in the caller's process.
func (g *graph) rolloutHost(progress io.Writer) *rollout.Host {
	e := &rollout.Engine{Services: g.db, Rollouts: g.db, Timeline: g.db, Registry: g.db, Launcher: g.launcher, Logger: g.logger, Progress: progress,
		Config: cli.ServiceConfig(g.estate, g.db)}
	return &rollout.Host{Engine: e, Channels: g.db, DataDir: g.cfg.DataDir, FrontEnd: cli.FrontEndCommand(g.cfg)}
}

// services are the CLI's services on this machine.
func (g *graph) services() *cli.Services {
	db := g.db
	return &cli.Services{Registry: db, Artifacts: g.arts, Tokens: db, Audit: db, Checkpoints: db, Estates: db, DataDir: g.cfg.DataDir,
		Platform: g.plats, Drift: g.drift, Inventory: db, Signer: g.signer, Reconcile: g.reconcile,
		Fleet: db, Advisories: db, AdvisorySources: db, Pipeline: db, ServiceStore: db, RolloutStore: db, Channels: db, Revoker: db, Pauses: db, Reproductions: db,
		Builder: g.builder, Launcher: g.launcher, Runner: g.runner, Tester: g.tester, Checker: g.checker,
		Rollouts: func(progress io.Writer) cli.RolloutHost { return g.rolloutHost(progress) },
		Images:   g.artifactRegistry(), ArtifactGC: g.collector(),
		Close: db.Close}
}

// artifactRegistry is the registry for the CLI (nil: a nil interface).
func (g *graph) artifactRegistry() cli.ArtifactRegistry {
	if g.images == nil {
		return nil
	}
	return g.images
}

// collector is kiln artifact gc on this machine's store and registry.
func (g *graph) collector() cli.ArtifactCollector {
	if g.local == nil {
		return nil
	}
	return &collector{dataDir: g.cfg.DataDir, local: g.local, images: g.images, reg: g.db, leases: g.db, logger: g.logger, audit: g.db, now: time.Now}
}

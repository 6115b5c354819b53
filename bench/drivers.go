package bench

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/sign"
)

// Store is what the measures ask of kiln's database: every store the API
// serves, plus signing versions as they are recorded and the synthetic
// counts the largest fleets are made of. The store's *DB is one.
type Store interface {
	api.Stores
	// SealVersionsWith makes every version recorded through the store
	// sealed by seal (its signed provenance).
	SealVersionsWith(seal func(*kiln.Version) (*kiln.Attachment, error))
	// AddSyntheticCounts adds running instances as counts only
	// (fleet.SynthConfig.CountsOnly).
	AddSyntheticCounts(ctx context.Context, counts []*kiln.Usage) error
}

// Drivers opens what the measures run on. Only the wiring opens drivers
// (cmd/kiln, and tests, through internal/benchdrivers); a measure takes
// them from its Env and sees kiln's interfaces.
type Drivers struct {
	// Store opens an empty store: backend "sqlite" is a file in dir;
	// "postgres" is a new schema on Env.Postgres that the returned close
	// drops.
	Store func(ctx context.Context, backend, dir, postgres string, logger *slog.Logger, clock kiln.Clock) (Store, func(), error)
	// Artifacts opens the local artifact store in dir.
	Artifacts func(dir string) (kiln.ArtifactStore, error)
	// Platform opens the local (systemd-nspawn) platform over dir and
	// arts, with this executable as its supervisor and probe; trees (may
	// be nil) hands it the build's layer trees (local.Config.Trees).
	Platform func(dir string, arts kiln.ArtifactStore, trees kiln.LayerTrees, logger *slog.Logger) (kiln.Platform, error)
	// Registry starts an OCI registry (Debian's docker-registry) on
	// loopback with its storage under dir, with kiln's registry artifact
	// store opened on it; Close stops it.
	Registry func(ctx context.Context, dir string, logger *slog.Logger) (Registry, error)
	// VMPlatform opens the VM (QEMU) platform over dir and arts, with this
	// executable as its supervisor, and says how it accelerates and boots
	// ("tcg, direct boot").
	VMPlatform func(dir string, arts kiln.ArtifactStore, logger *slog.Logger) (kiln.Platform, string, error)
}

// errNoDriver is a wiring mistake: the caller built an Env without the
// driver a measure needs.
var errNoDriver = errors.New("bench: the Env has no driver for this measure (wire bench.Drivers, e.g. benchdrivers.Real())")

// openStore opens an empty store of kind ("sqlite" or "postgres") in the
// measure's directory.
func (e *Env) openStore(ctx context.Context, kind string, clock kiln.Clock) (Store, func(), error) {
	if e.Drivers.Store == nil {
		return nil, nil, errNoDriver
	}
	return e.Drivers.Store(ctx, kind, e.Dir, e.Postgres, e.Logger, clock)
}

// openSealedStore opens an empty SQLite store whose versions are sealed
// (signed) with a throwaway key, as kiln's store seals with its own; the
// signer's public key is what a launcher verifies against.
func (e *Env) openSealedStore(ctx context.Context) (Store, *sign.Signer, func(), error) {
	db, closeDB, err := e.openStore(ctx, "sqlite", time.Now)
	if err != nil {
		return nil, nil, nil, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		closeDB()
		return nil, nil, nil, err
	}
	signer := sign.NewSigner(key)
	db.SealVersionsWith(signer.Seal)
	return db, signer, closeDB, nil
}

// openArtifacts opens the local artifact store in dir.
func (e *Env) openArtifacts(dir string) (kiln.ArtifactStore, error) {
	if e.Drivers.Artifacts == nil {
		return nil, errNoDriver
	}
	return e.Drivers.Artifacts(dir)
}

// openPlatform opens the local platform over dir and arts (and trees,
// which may be nil).
func (e *Env) openPlatform(dir string, arts kiln.ArtifactStore, trees kiln.LayerTrees) (kiln.Platform, error) {
	if e.Drivers.Platform == nil {
		return nil, errNoDriver
	}
	return e.Drivers.Platform(dir, arts, trees, e.Logger)
}

// backends are the databases a figure is taken on: SQLite always,
// PostgreSQL when the run was given a URL.
func (e *Env) backends() []string {
	if e.Postgres == "" {
		return []string{"sqlite"}
	}
	return []string{"sqlite", "postgres"}
}

// openVMPlatform opens the VM platform over dir and arts.
func (e *Env) openVMPlatform(dir string, arts kiln.ArtifactStore) (kiln.Platform, string, error) {
	if e.Drivers.VMPlatform == nil {
		return nil, "", errNoDriver
	}
	return e.Drivers.VMPlatform(dir, arts, e.Logger)
}

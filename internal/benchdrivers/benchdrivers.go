// Package benchdrivers opens the real drivers `kiln bench all` measures
// (package bench takes them as bench.Drivers and sees only kiln's
// interfaces): the SQLite or PostgreSQL store, each PostgreSQL run in a
// schema of its own that closing drops, the local artifact store, and the
// local platform with this executable as supervisor and probe. It is
// wiring, like cmd/kiln, which with the benchmarks in tests is its only
// user.
package benchdrivers

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"

	_ "github.com/jackc/pgx/v5/stdlib" // the admin connection that makes and drops the bench schema

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/bench"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/platform/vm"
	"github.com/kiln-project/kiln/store"
)

// Real is the drivers kiln runs on.
func Real() bench.Drivers {
	return bench.Drivers{
		Store: openStore,
		Artifacts: func(dir string) (kiln.ArtifactStore, error) {
			return artifact.Open(dir)
		},
		Platform:   openPlatform,
		Registry:   openRegistry,
		VMPlatform: openVMPlatform,
	}
}

// openStore opens an empty store: a SQLite file in dir, or a new
// PostgreSQL schema that close drops.
func openStore(ctx context.Context, kind, dir, postgres string, logger *slog.Logger, clock kiln.Clock) (bench.Store, func(), error) {
	switch kind {
	case "sqlite":
		db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "kiln.db"), "", logger, clock)
		if err != nil {
			return nil, nil, err
		}
		return db, func() { _ = db.Close() }, nil
	case "postgres":
	default:
		return nil, nil, fmt.Errorf("bench: unknown backend %q (sqlite or postgres)", kind)
	}
	if postgres == "" {
		return nil, nil, fmt.Errorf("bench: the postgres figures need --postgres URL")
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "kiln_bench_" + hex.EncodeToString(b[:])
	admin, err := sql.Open("pgx", postgres)
	if err != nil {
		return nil, nil, fmt.Errorf("--postgres: %w", err)
	}
	if _, err := admin.ExecContext(ctx, `CREATE SCHEMA `+schema); err != nil {
		_ = admin.Close()
		return nil, nil, fmt.Errorf("--postgres: create the bench schema: %w", err)
	}
	drop := func() {
		_, _ = admin.ExecContext(context.WithoutCancel(ctx), `DROP SCHEMA `+schema+` CASCADE`)
		_ = admin.Close()
	}
	pu, err := url.Parse(postgres)
	if err != nil {
		drop()
		return nil, nil, fmt.Errorf("--postgres: %w", err)
	}
	q := pu.Query()
	q.Set("search_path", schema)
	pu.RawQuery = q.Encode()
	db, err := store.Open(ctx, pu.String(), "", logger, clock)
	if err != nil {
		drop()
		return nil, nil, err
	}
	return db, func() { _ = db.Close(); drop() }, nil
}

// openPlatform opens the local platform over dir, supervised and probed
// by this executable (kiln, or a test binary playing its hidden roles).
func openPlatform(dir string, arts kiln.ArtifactStore, trees kiln.LayerTrees, logger *slog.Logger) (kiln.Platform, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	return local.New(local.Config{DataDir: dir, Artifacts: arts, Trees: trees, ProbeBinary: exe, Supervisor: []string{exe, "__supervise"}, Logger: logger})
}

// openVMPlatform opens the VM platform over dir, supervised by this
// executable, and says its accelerator and boot method.
func openVMPlatform(dir string, arts kiln.ArtifactStore, logger *slog.Logger) (kiln.Platform, string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	p, err := vm.New(vm.Config{DataDir: dir, Artifacts: arts, Supervisor: []string{exe, "__vm-supervise"}, Logger: logger})
	if err != nil {
		return nil, "", err
	}
	return p, fmt.Sprintf("%s, %s boot, %d vCPUs", p.Accel(), p.Boot(), p.CPUs()), nil
}

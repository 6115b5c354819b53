package local

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/kiln-project/kiln"
)

var _ kiln.Platform = (*Platform)(nil)

// Config configures the local platform.
type Config struct {
	// DataDir is kiln's data directory; the platform keeps its files under
	// DataDir/local.
	DataDir string
	// Artifacts is where versions' root filesystem tarballs are read from.
	Artifacts kiln.ArtifactStore
	Logger    *slog.Logger
	// ProbeBinary is the host file mounted read-only at ProbePath in every
	// instance; empty means the running executable.
	ProbeBinary string
	// Supervisor is the command that runs SupervisorMain, to which
	// "--dir DIR" is appended; empty means the running executable with the
	// hidden command "__supervise".
	Supervisor []string
	// Trees, when set, hands a launch the trees the build left of the
	// version's layers (build.Trees), which the layer cache takes as hard
	// links, each checked against its diff ID, instead of unpacking the
	// blobs again. nil: every layer is unpacked from the artifact store.
	Trees kiln.LayerTrees
}

// Platform runs instances on this machine with systemd-nspawn.
type Platform struct {
	dataDir    string // DataDir/local
	artifacts  kiln.ArtifactStore
	trees      kiln.LayerTrees
	log        *slog.Logger
	probe      string
	supervisor []string
}

// New checks cfg and the tools the platform needs and returns the platform.
func New(cfg Config) (*Platform, error) {
	if cfg.DataDir == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "data_dir", "the local platform needs a data directory")
	}
	if cfg.Artifacts == nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts", "the local platform needs an artifact store")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local platform: %w", err)
	}
	p := &Platform{
		dataDir:    filepath.Join(dataDir, "local"),
		artifacts:  cfg.Artifacts,
		trees:      cfg.Trees,
		log:        cfg.Logger,
		probe:      cfg.ProbeBinary,
		supervisor: cfg.Supervisor,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.probe == "" || len(p.supervisor) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local platform: find own executable: %w", err)
		}
		if p.probe == "" {
			p.probe = exe
		}
		if len(p.supervisor) == 0 {
			p.supervisor = []string{exe, "__supervise"}
		}
	}
	if !filepath.IsAbs(p.probe) {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "probe_binary", "%q is not an absolute path", p.probe)
	}
	if fi, err := os.Stat(p.probe); err != nil || !fi.Mode().IsRegular() {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "probe_binary", "%q is not a file (%v); point it at the kiln binary", p.probe, err)
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "the local platform needs %s, which is not on PATH; install systemd-container, util-linux and tar", tool)
		}
	}
	for _, d := range []string{"rootfs", "instances"} {
		if err := os.MkdirAll(filepath.Join(p.dataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("local platform: %w", err)
		}
	}
	return p, nil
}

// Name is "local".
func (p *Platform) Name() string { return "local" }

package build

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// DiskBenchResult is one fresh build of a bootable image (minbase with
// systemd and the distribution kernel) with formats = ["rootfs", "qcow2"].
type DiskBenchResult struct {
	// Rootfs is the root filesystem bake: every step before the disk image
	// (bootstrap, steps, release file and rootfs artifact).
	Rootfs time.Duration
	// Disk is the qcow2 disk image step.
	Disk    time.Duration
	Version *kiln.Version
	QCOW2   kiln.Artifact
}

// DiskBench builds that image once on opts' data directory, with kernel
// as its kernel package (default linux-image-amd64; linux-image-cloud-amd64
// is the virtual machines' flavour) and agent as the image's kiln binary
// (the VM platform's guest agent), and reports the disk image step against
// the root filesystem bake.
func DiskBench(ctx context.Context, opts BenchOptions, agent, kernel string) (*DiskBenchResult, error) {
	name := "kiln-bench-disk"
	switch kernel {
	case "", "linux-image-amd64":
		kernel = "linux-image-amd64"
	default:
		name += "-" + strings.TrimSuffix(strings.TrimPrefix(kernel, "linux-image-"), "-amd64")
	}
	if opts.Suite == "" {
		opts.Suite = "bookworm"
	}
	if opts.Mirror == "" {
		opts.Mirror = "http://deb.debian.org/debian"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Artifacts == nil || agent == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts", "the disk benchmark needs an artifact store and a kiln binary for the image")
	}
	deb := &definition.Debian{Suite: opts.Suite, Mirror: opts.Mirror, Variant: "minbase", Components: []string{"main"}}
	pkgs := append([]string{"systemd-sysv", "ca-certificates", kernel}, opts.Packages...)
	img := &definition.Image{Name: name, File: "bench.kiln.hcl", Debian: deb, Method: "fresh", Packages: pkgs,
		Formats: []kiln.ArtifactFormat{kiln.FormatRootfs, kiln.FormatQCOW2}}
	img.Digest = jsonDigest(struct {
		Debian   *definition.Debian
		Packages []string
		Formats  []kiln.ArtifactFormat
	}{deb, pkgs, img.Formats})
	est := &definition.Estate{Images: map[string]*definition.Image{img.Name: img}, Order: []string{img.Name}}
	b := &Builder{Registry: opts.Registry, Artifacts: opts.Artifacts, DataDir: opts.DataDir, Logger: opts.Logger, AgentBinary: agent}
	res, err := b.Build(ctx, est, img, Options{Progress: opts.Progress, BuiltBy: "kiln bench", NoCache: true, Force: true})
	if err != nil {
		return nil, err
	}
	v := res.Version
	q, err := v.Artifact(kiln.FormatQCOW2)
	if err != nil {
		return nil, err
	}
	if len(res.Steps) < 2 || !strings.HasPrefix(res.Steps[len(res.Steps)-1].Name, "disk image") {
		return nil, fmt.Errorf("bench: the build's last step is not its disk image: %+v", res.Steps)
	}
	out := &DiskBenchResult{Version: v, QCOW2: *q, Disk: res.Steps[len(res.Steps)-1].Elapsed}
	for _, s := range res.Steps[:len(res.Steps)-1] {
		out.Rootfs += s.Elapsed
	}
	return out, nil
}

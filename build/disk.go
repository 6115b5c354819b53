package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/platform/vm/disk"
)

// totalSteps is how many progress steps the build has: the start (a
// bootstrap or the layers it builds on), the definition's steps, the
// release file with the root filesystem artifact, and one per disk image.
func (r *run) totalSteps() int {
	return len(r.steps) + 2 + len(r.img.DiskFormats())
}

// disks builds the disk images the image line declares (formats = […])
// from the version's root filesystem artifact as stored — read back from
// the artifact store with its digest checked, so each disk image is made
// from exactly what the version records — and keeps them in the artifact
// store. The rootfs digest seeds the disks' UUIDs, so the same rootfs gives
// the same disk bytes (platform/vm/disk). They are returned in the order
// declared, each with its format; r.disks tracks them for dropArtifact.
func (r *run) disks(ctx context.Context, rootfs *kiln.Artifact) ([]kiln.Artifact, error) {
	formats := r.img.DiskFormats()
	if len(formats) == 0 {
		return nil, nil
	}
	total := r.totalSteps()
	first := total - len(formats) + 1
	var tarball string
	var out []kiln.Artifact
	for i, f := range formats {
		n := first + i
		name := fmt.Sprintf("disk image %s", f)
		t := time.Now()
		r.rep.event(Event{Kind: EventStepStart, Step: n, Steps: total, Name: name})
		if tarball == "" {
			p, err := r.rootfsFile(ctx, rootfs)
			if err != nil {
				err = fmt.Errorf("%s: %w", name, err)
				r.rep.event(Event{Kind: EventStepEnd, Step: n, Steps: total, Name: name, Elapsed: time.Since(t), Err: err})
				return nil, err
			}
			tarball = p
		}
		a, res, err := r.disk(ctx, tarball, rootfs.Digest, f)
		if err != nil {
			err = fmt.Errorf("%s: %w", name, err)
			r.rep.event(Event{Kind: EventStepEnd, Step: n, Steps: total, Name: name, Elapsed: time.Since(t), Err: err})
			return nil, err
		}
		r.disksKept = append(r.disksKept, *a)
		out = append(out, *a)
		r.rep.logf("%s: %s, %d bytes (virtual %d), kernel %s, systemd-boot from %s, root filesystem UUID %s",
			name, a.Digest, a.Size, res.VirtualSize, res.Kernel, res.BootLoader, res.RootUUID)
		r.stepDone(n, total, name, false, t, "")
	}
	if tarball != "" {
		_ = os.RemoveAll(tarball)
	}
	return out, nil
}

// rootfsFile gives the disk builder the root filesystem artifact a as a
// path: a single-tar artifact copied out of the store into the build
// directory (digest checked while reading), a layered one applied bottom
// first into a directory there (each layer checked against its digest and
// diff ID while read).
func (r *run) rootfsFile(ctx context.Context, a *kiln.Artifact) (string, error) {
	if a.Layered() {
		dir := r.w.path("disk-rootfs")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		ls, err := layer.Layers(ctx, r.b.Artifacts, a)
		if err != nil {
			return "", fmt.Errorf("read the root filesystem's layer list: %w", err)
		}
		for _, l := range ls {
			rc, err := layer.Open(ctx, r.b.Artifacts, l)
			if err != nil {
				return "", err
			}
			err = layer.ExtractTar(ctx, rc, dir, layer.ExtractOptions{Apply: true})
			if cerr := rc.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return "", fmt.Errorf("unpack the root filesystem layer %s: %w", l.Digest, err)
			}
		}
		return dir, nil
	}
	p := r.w.path("disk-rootfs.tar")
	rc, err := r.b.Artifacts.Open(ctx, a.Digest)
	if err != nil {
		return "", fmt.Errorf("read the root filesystem artifact: %w", err)
	}
	defer rc.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return "", fmt.Errorf("copy the root filesystem artifact: %w", err)
	}
	if err := rc.Close(); err != nil {
		f.Close()
		return "", fmt.Errorf("the root filesystem artifact does not match its digest %s: %w", a.Digest, err)
	}
	return p, f.Close()
}

// disk builds one disk image of format f from the rootfs tarball and puts
// it into the artifact store.
func (r *run) disk(ctx context.Context, tarball, seed string, f kiln.ArtifactFormat) (*kiln.Artifact, *disk.Result, error) {
	dir := r.w.path("disk-" + string(f))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	res, err := disk.Build(ctx, disk.Spec{
		Rootfs: tarball,
		Seed:   seed,
		Output: filepath.Join(dir, "disk."+string(f)),
		Format: disk.Format(f),
		// The image's own kiln binary (installed by the build when the
		// builder has AgentBinary) serves the VM platform's commands.
		TempDir: dir,
	})
	if err != nil {
		if r.b.AgentBinary == "" {
			// KILN_NO_AGENT=1 (or a Builder without one): the image has
			// no kiln binary, which a disk image needs as its guest agent.
			err = fmt.Errorf("%w (this build installs no kiln binary in the image: unset KILN_NO_AGENT)", err)
		}
		return nil, nil, err
	}
	file, err := os.Open(res.Path)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	a, err := r.b.Artifacts.Put(ctx, file)
	if err != nil {
		return nil, nil, fmt.Errorf("store the disk image: %w", err)
	}
	if a.Digest != res.Digest {
		_ = r.b.Artifacts.Delete(ctx, a.Digest)
		return nil, nil, fmt.Errorf("the artifact store recorded the disk image as %s, but it was written as %s", a.Digest, res.Digest)
	}
	a.Format = f
	return a, res, nil
}

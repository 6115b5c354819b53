package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// releasePath is where every image says what it was made from.
const releasePath = "etc/kiln-release"

// finish writes /etc/kiln-release on top of the cached layers (the one
// step never cached), reads the package manifest, exports the root
// filesystem as the version's artifact and returns the version to record.
//
// The version number in /etc/kiln-release is reserved before registration
// as the image's latest number + 1. A per-image lock serialises builds on
// this machine; register checks the number the registry assigned and marks
// the version failed if another machine took the number meanwhile.
func (r *run) finish(ctx context.Context, lowers []string, started time.Time) (*kiln.NewVersion, error) {
	b, img := r.b, r.img
	total := r.totalSteps()
	n := len(r.steps) + 2
	t := time.Now()
	name := "release file /etc/kiln-release and artifact"
	r.rep.event(Event{Kind: EventStepStart, Step: n, Steps: total, Name: name})
	fail := func(err error) (*kiln.NewVersion, error) {
		r.rep.event(Event{Kind: EventStepEnd, Step: n, Steps: total, Name: name, Elapsed: time.Since(t), Err: err})
		return nil, err
	}

	rec, err := b.Registry.FindImage(ctx, img.Name)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		rec = &kiln.Image{Name: img.Name, Description: img.Description}
		if err = b.Registry.CreateImage(ctx, rec); kiln.ErrorCode(err) == kiln.ECONFLICT {
			rec, err = b.Registry.FindImage(ctx, img.Name)
		}
	}
	if err != nil {
		return fail(fmt.Errorf("image %s in the registry: %w", img.Name, err))
	}
	r.number = rec.LatestNumber + 1
	if r.rebuild != nil {
		r.number = r.rebuild.version.Number
	}

	d := r.w.path("final")
	top := slices.Clone(lowers)
	slices.Reverse(top) // overlayfs lists the topmost lower first
	o := &overlayfs.Overlay{Lowers: top, Upper: filepath.Join(d, "upper"), Work: filepath.Join(d, "work"), Target: filepath.Join(d, "merged")}
	if err := r.cache.holdFailure(); err != nil {
		return fail(err)
	}
	if err := r.w.mount(o); err != nil {
		return fail(err)
	}
	// Every write below is resolved inside the image's root: an origin
	// artifact is anyone's tarball, and a symlink in it must not lead a
	// write to the host.
	root, err := os.OpenRoot(o.Target)
	if err != nil {
		return fail(err)
	}
	defer root.Close()
	old, err := root.ReadFile(releasePath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("read /%s in the image: %w", releasePath, err))
	}
	content := releaseFile(old, releaseInfo{
		image: img.Name, number: r.number, semver: img.Version, defDigest: img.Digest,
		method: string(r.method), epoch: r.epoch, parent: r.parent, base: r.base,
	})
	if err := replaceInRoot(root, releasePath, bytes.NewReader(content), 0o644); err != nil {
		return fail(fmt.Errorf("write /%s in the image: %w", releasePath, err))
	}
	r.rep.logf("/etc/kiln-release:\n%s", content)
	// The image carries its volatile patterns (docs/definitions.md); drift
	// detection reads them from its root filesystem.
	vf := strings.TrimPrefix(definition.VolatileFile, "/")
	if err := root.Remove(vf); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("replace %s in the image: %w", definition.VolatileFile, err))
	}
	if vol := r.est.Volatile(img.Name); len(vol) > 0 {
		if err := replaceInRoot(root, vf, bytes.NewReader(definition.FormatVolatile(img.Name, vol)), 0o644); err != nil {
			return fail(fmt.Errorf("write %s in the image: %w", definition.VolatileFile, err))
		}
	}
	sources := r.sources
	if b.AgentBinary != "" {
		src, err := installAgent(root, b.AgentBinary)
		if err != nil {
			return fail(err)
		}
		sources = append(append([]kiln.Source(nil), sources...), src)
		r.rep.logf("installed the kiln agent (%s) and its check-in timer", src.Digest)
	}
	scrubbed, err := scrub(root)
	if err != nil {
		return fail(fmt.Errorf("take per-build files out of the image: %w", err))
	}
	if len(scrubbed) > 0 {
		r.rep.logf("reproducible image: removed or emptied %s", strings.Join(scrubbed, " "))
	}
	root.Close()
	pkgs, err := bake.Manifest(o.Target)
	if err != nil {
		return fail(err)
	}
	r.readLicences(o.Target, pkgs)
	// No time in the artifact is later than SOURCE_DATE_EPOCH.
	// The build's own layers must be in the store before they are listed.
	r.bg.Wait()
	if r.bgErr != nil {
		return fail(r.bgErr)
	}
	own, err := r.ownLayers(ctx)
	if err != nil {
		return fail(err)
	}
	var stack []kiln.Layer
	if len(r.startLayers)+len(own)+1 > kiln.MaxLayers {
		// Too deep a stack: squash the version into one layer of its
		// whole root filesystem; the next reheats stack on that.
		r.rep.logf("%d layers would pass the limit of %d: the artifact is the whole root filesystem as one layer", len(r.startLayers)+len(own)+1, kiln.MaxLayers)
		l, err := layer.Put(ctx, b.Artifacts, o.Target, layer.WriteOptions{ClampMtime: r.epoch, Compression: b.LayerCompression})
		if err != nil {
			return fail(fmt.Errorf("store artifact: %w", err))
		}
		stack, r.releaseLayer = []kiln.Layer{l}, &l
	}
	if err := r.w.unmount(o.Target); err != nil {
		return fail(err)
	}
	if stack == nil {
		// On disk as in its tar (as every cached layer is): the tree is
		// kept for reheats and handed to the platform as this layer
		// (Trees), which checks it against the layer's diff ID.
		if err := bake.ClampTree(ctx, o.Upper, r.epoch); err != nil {
			return fail(err)
		}
		l, err := layer.Put(ctx, b.Artifacts, o.Upper, layer.WriteOptions{Layer: true, ClampMtime: r.epoch, Compression: b.LayerCompression})
		if err != nil {
			return fail(fmt.Errorf("store release layer: %w", err))
		}
		r.releaseLayer = &l
		stack = append(append(slices.Clone(r.startLayers), own...), l)
	}
	art, err := layer.PutList(ctx, b.Artifacts, stack)
	if err != nil {
		return fail(fmt.Errorf("store artifact: %w", err))
	}
	r.artifact = art
	// Keep the release layer so a reheat of this version stacks the
	// cached layers instead of unpacking the artifact.
	r.finalKey = chainKey(r.keys[len(r.keys)-1], art.Digest)
	if err := os.Rename(o.Upper, r.cache.tree(r.finalKey)); err != nil {
		r.finalKey = ""
	}
	for i := range r.res.Steps {
		if i < len(r.keys) {
			if e, ok := r.cache.lookup(r.keys[i]); ok {
				r.res.Steps[i].Layer = e.Layer.Digest
			}
		}
	}
	r.stepDone(n, total, name, false, t, "")
	disks, err := r.disks(ctx, art)
	if err != nil {
		return nil, err
	}

	builtBy := r.opts.BuiltBy
	if builtBy == "" {
		builtBy = kiln.ActorFrom(ctx)
	}
	return &kiln.NewVersion{
		Image:  img.Name,
		SemVer: img.Version,
		Tags:   kiln.Tags(img.Tags),
		Provenance: kiln.Provenance{
			Method:     r.method,
			Parent:     r.parent,
			Base:       r.base,
			Sources:    sources,
			Packages:   pkgs,
			Artifact:   art,
			Artifacts:  disks,
			BuiltBy:    builtBy,
			StartedAt:  started,
			FinishedAt: b.Clock().UTC(),

			SourceDateEpoch:     r.epoch.Unix(),
			SourceDateEpochFrom: r.epochFrom,
		},
	}, nil
}

// register records the version and its build log. When anything fails the
// artifact is deleted; a version already recorded is marked failed with
// the reason, since the registry keeps every number it gave out.
func (r *run) register(ctx context.Context, nv *kiln.NewVersion) error {
	b := r.b
	// Registration must not be half-done because the user pressed Ctrl-C
	// between two calls: finish it with a bounded context of its own.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := ctx.Err(); err != nil {
		r.dropArtifact(rctx)
		return err
	}
	v, err := b.Registry.CreateVersion(rctx, nv)
	if err != nil {
		r.dropArtifact(rctx)
		return fmt.Errorf("register version: %w", err)
	}
	// CreateVersion may have pushed the content to a registry first
	// (--artifacts oci://…), which takes as long as the upload does: what
	// follows has a minute of its own.
	cancel()
	rctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	markFailed := func(reason string) {
		if _, err := b.Registry.SetStatus(rctx, v.Ref(), kiln.StatusFailed, reason); err != nil {
			b.Logger.Error("cannot mark version failed", "version", v.Name, "err", err)
		}
	}
	if v.Number != r.number {
		reason := fmt.Sprintf("its /etc/kiln-release says %s-%d: another build registered that number meanwhile", v.Image, r.number)
		markFailed(reason)
		return kiln.Errorf(kiln.ECONFLICT, "version %s marked failed: %s; build again", v.Name, reason)
	}
	r.attachSBOMs(rctx, v)
	r.rep.event(Event{Kind: EventDone, Version: ptr(v.Ref()), Elapsed: time.Since(nv.Provenance.StartedAt), Name: summary(r.res)})
	log := r.rep.bytes()
	err = b.Registry.AddAttachment(rctx, v.Ref(), &kiln.Attachment{
		Name: LogAttachment, MediaType: "text/plain; charset=utf-8", Size: int64(len(log)), CreatedAt: b.Clock().UTC(), Data: log,
	})
	if err != nil {
		markFailed("the build log could not be stored: " + err.Error())
		return fmt.Errorf("attach build log to %s (version marked failed): %w", v.Name, err)
	}
	if r.finalKey != "" {
		_ = r.cache.saveStack(nv.Provenance.Artifact.Digest, append(append([]string(nil), r.keys...), r.finalKey))
	}
	r.res.Version = v
	return nil
}

// ownLayers returns the layers of the cached trees this build made
// itself (everything above the start artifact's layers), bottom first. A
// cached tree whose blob left the artifact store is exported again.
func (r *run) ownLayers(ctx context.Context) ([]kiln.Layer, error) {
	var out []kiln.Layer
	for _, key := range r.keys[r.ownFrom:] {
		e, ok := r.cache.lookup(key)
		if ok {
			if _, err := r.b.Artifacts.Stat(ctx, e.Layer.Digest); err == nil {
				out = append(out, e.ociLayer())
				continue
			} else if kiln.ErrorCode(err) != kiln.ENOTFOUND {
				return nil, fmt.Errorf("find layer %s: %w", e.Layer.Digest, err)
			}
		}
		step := "layer"
		if e != nil {
			step = e.Step
		}
		l, err := layer.Put(ctx, r.b.Artifacts, r.cache.tree(key), layer.WriteOptions{Layer: true, Compression: r.b.LayerCompression})
		if err != nil {
			return nil, fmt.Errorf("store layer of %s: %w", step, err)
		}
		if err := r.cache.save(entryOf(key, step, l, r.b.Clock().UTC()), ""); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

func (r *run) dropArtifact(ctx context.Context) {
	if r.rebuild != nil && r.artifact != nil && r.rebuild.version.Provenance.Artifact != nil && r.artifact.Digest == r.rebuild.version.Provenance.Artifact.Digest {
		return // the recorded version's own artifact
	}
	if r.artifact != nil {
		_ = r.b.Artifacts.Delete(ctx, r.artifact.Digest)
	}
	for _, a := range r.disksKept {
		_ = r.b.Artifacts.Delete(ctx, a.Digest)
	}
	if r.releaseLayer != nil {
		_ = r.b.Artifacts.Delete(ctx, r.releaseLayer.Digest)
	}
	if r.finalKey != "" {
		_ = os.RemoveAll(r.cache.tree(r.finalKey))
	}
}

func summary(res *Result) string {
	cached := 0
	for _, s := range res.Steps {
		if s.Cached {
			cached++
		}
	}
	return fmt.Sprintf("%d steps, %d from cache", len(res.Steps), cached)
}

func ptr[T any](v T) *T { return &v }

package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// Builder builds images on this machine and registers them.
type Builder struct {
	Registry  kiln.Registry
	Artifacts kiln.ArtifactStore
	// DataDir holds build directories (build/), the step cache (cache/).
	DataDir string
	Logger  *slog.Logger
	Clock   kiln.Clock
	// HTTP fetches Release files and origin artifacts; nil uses a client
	// with a 30 s timeout.
	HTTP *http.Client
	// AgentBinary, when set, is the (static) kiln binary installed in every
	// image as /usr/local/bin/kiln with the kiln-agent check-in timer
	// (docs/fleet.md), so servers report their version. Empty: no agent.
	AgentBinary string
	// SBOM signs the SPDX and CycloneDX SBOMs kept with every version
	// built (the provenance signing key); nil keeps none.
	SBOM SBOMSealer
	// LayerCompression is how the layers it stores are compressed: gzip
	// ("", the default) or zstd (--layer-compression).
	LayerCompression layer.Compression
	// DiskBootstrap makes fresh bakes bootstrap on the data directory's
	// disk; by default they bootstrap in a tmpfs when the machine has the
	// memory (scratch.go).
	DiskBootstrap bool
}

// Options change one build.
type Options struct {
	// Force builds a new version even when the latest one was made from
	// the same inputs.
	Force bool
	// NoCache runs every step, ignoring (but refreshing) the step cache.
	NoCache bool
	// Verbose copies the steps' live output to Progress.
	Verbose bool
	// Progress receives one line per event (and the steps' output when
	// Verbose); nil prints nothing.
	Progress io.Writer
	// OnEvent, when set, is called with each event as it happens.
	OnEvent func(Event)
	// BuiltBy is recorded in the provenance; default: the context's actor.
	BuiltBy string
	// Bases pins the version to build on for some base images, by image
	// name; BuildAll fills it with the versions it just built, so a base
	// built in the same run is used even though it is not ready yet.
	Bases map[string]kiln.VersionRef
	// SourceDateEpoch, when positive, is the build's SOURCE_DATE_EPOCH
	// (Unix seconds) instead of the one taken from the inputs (see
	// sourceDateEpoch).
	SourceDateEpoch int64
}

// Result is what a build made.
type Result struct {
	Image string
	// Version is the new candidate version; nil when UpToDate.
	Version *kiln.Version
	// UpToDate is set when nothing changed since Latest and no version
	// was made.
	UpToDate bool
	Latest   *kiln.Version
	Steps    []StepResult
	Elapsed  time.Duration
	// Log is the full build log, also attached to the version as build.log.
	Log []byte
}

// StepResult is one step of a build.
type StepResult struct {
	Name    string
	Cached  bool
	Elapsed time.Duration
	// Layer is the digest of the step's layer in the artifact store.
	Layer string
}

// LogAttachment names the build log attached to each version.
const LogAttachment = "build.log"

// BuildAll builds the named images of the estate (all when names is
// empty) in dependency order, a base before the images built on it, and
// stops at the first failure. Each image built on another uses the version
// of its base made (or found up to date) earlier in the same run.
func (b *Builder) BuildAll(ctx context.Context, est *definition.Estate, names []string, opts Options) ([]*Result, error) {
	want := map[string]bool{}
	for _, n := range names {
		if _, ok := est.Images[n]; !ok {
			known := slices.Sorted(maps.Keys(est.Images))
			return nil, kiln.FieldErrorf(kiln.EINVALID, "image", "image %q is not defined in %s; defined: %s", n, est.Dir, strings.Join(known, ", "))
		}
		want[n] = true
	}
	bases := map[string]kiln.VersionRef{}
	for k, v := range opts.Bases {
		bases[k] = v
	}
	opts.Bases = bases
	var results []*Result
	for _, name := range est.Order {
		if len(want) > 0 && !want[name] {
			continue
		}
		res, err := b.Build(ctx, est, est.Images[name], opts)
		if res != nil {
			results = append(results, res)
		}
		if err != nil {
			return results, err
		}
		if res.Version != nil {
			bases[name] = res.Version.Ref()
		} else if res.Latest != nil {
			bases[name] = res.Latest.Ref()
		}
	}
	return results, nil
}

// Build builds one image and registers it as a candidate version, or
// reports it up to date. On any error, nothing is registered and the
// build directory is removed; the Result still carries the log.
func (b *Builder) Build(ctx context.Context, est *definition.Estate, img *definition.Image, opts Options) (*Result, error) {
	if b.Logger == nil || b.Clock == nil {
		bb := *b
		if bb.Logger == nil {
			bb.Logger = slog.New(slog.DiscardHandler)
		}
		if bb.Clock == nil {
			bb.Clock = time.Now
		}
		b = &bb
	}
	start := time.Now()
	rep := &reporter{image: img.Name, progress: opts.Progress, verbose: opts.Verbose, onEvent: opts.OnEvent}
	res := &Result{Image: img.Name}
	r := &run{b: b, est: est, img: img, opts: opts, rep: rep, res: res}
	err := r.build(ctx)
	res.Elapsed = time.Since(start)
	if err != nil {
		rep.event(Event{Kind: EventDone, Err: err, Elapsed: res.Elapsed})
		res.Log = rep.bytes()
		return res, fmt.Errorf("build %s: %w", img.Name, err)
	}
	res.Log = rep.bytes()
	return res, nil
}

// run is one build in progress.
type run struct {
	b    *Builder
	est  *definition.Estate
	img  *definition.Image
	opts Options
	rep  *reporter
	res  *Result

	cache *cache
	w     *workdir

	method  kiln.Method
	parent  *kiln.VersionRef
	base    *kiln.VersionRef
	debian  *definition.Debian
	release *debian.Release
	// startDigest is the artifact a non-fresh build starts from, start
	// the artifact itself.
	startDigest string
	start       *kiln.Artifact
	// startLayers are the start artifact's layers (bottom first): the
	// bottom of the new version's stack. ownFrom is the index in keys of
	// the first layer the build made itself.
	startLayers []kiln.Layer
	ownFrom     int
	// parentRelease is the Release digest the reheated parent was built from.
	parentRelease string
	sources       []kiln.Source
	aptSources    []*aptSource // aptsource.go

	steps []*step
	// keys are the cache keys of the layers, bottom first.
	keys     []string
	finalKey string
	number   int
	artifact *kiln.Artifact
	// disksKept are the disk images put into the artifact store so far.
	disksKept []kiln.Artifact
	// releaseLayer is the layer only this version has (the release file
	// and agent, or the whole root when squashed), deleted with the
	// artifact when the build fails.
	releaseLayer *kiln.Layer
	// licences are the packages' licences read from the final root
	// filesystem, for the SBOM (sbom.Options.Licenses).
	licences map[string]string
	// live are layer trees still in the build's tmpfs, by cache key,
	// while their copies to the step cache run (scratch.go).
	live map[string]string
	// copies are the copies of those trees to the step cache; copyErr
	// the first that failed.
	copies  sync.WaitGroup
	copyErr error
	// parsed is the shared parsed lists being made after the bootstrap
	// (aptparsed.go), waited for at the build's end.
	parsed sync.WaitGroup
	// bg collects layer exports running in the background.
	bg    sync.WaitGroup
	bgMu  sync.Mutex
	bgErr error

	// epoch is the build's SOURCE_DATE_EPOCH (epochFrom says where it came
	// from): every step sees it, every layer and the artifact hold no
	// later time.
	epoch     time.Time
	epochFrom string
	// rebuild is set when the run rebuilds a recorded version
	// (Builder.Rebuild): nothing is registered.
	rebuild *rebuildState
}

// step is one layer of the build.
type step struct {
	name   string
	digest string
	run    func(ctx context.Context, root string) error
}

func (r *run) build(ctx context.Context) (err error) {
	b, img := r.b, r.img
	started := b.Clock().UTC()
	if err := kiln.ValidateImageName(img.Name); err != nil {
		return err
	}
	if r.cache, err = newCache(b.DataDir); err != nil {
		return err
	}
	unlock, err := lockImage(b.DataDir, img.Name)
	if err != nil {
		return err
	}
	defer unlock()

	if err := r.resolveOrigin(ctx); err != nil {
		return err
	}
	latest, err := b.Registry.LatestVersion(ctx, img.Name, "")
	if err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
		return fmt.Errorf("find latest version: %w", err)
	}
	if r.rebuild == nil && latest != nil && !r.opts.Force && sameInputs(&latest.Provenance, r.sources, r.base) {
		r.res.UpToDate, r.res.Latest = true, latest
		r.rep.event(Event{Kind: EventUpToDate, Name: "same definition, files and origin as " + latest.Name})
		return nil
	}
	r.rep.event(Event{Kind: EventStart, Name: r.describe()})

	if r.w, err = newWorkdir(b.DataDir, b.Logger); err != nil {
		return err
	}
	r.cache.holdIn(r.w)
	defer func() {
		r.bg.Wait()
		r.parsed.Wait()
		r.dropScratch()
		if cerr := r.w.close(); cerr != nil {
			b.Logger.Error("build directory not cleaned; the next kiln start cleans it", "dir", r.w.dir, "err", cerr)
			if err == nil {
				err = cerr
			}
		}
	}()

	lowers, err := r.layers(ctx)
	if err != nil {
		return err
	}
	nv, err := r.finish(ctx, lowers, started)
	if err != nil {
		r.dropArtifact(context.WithoutCancel(ctx))
		return err
	}
	if r.rebuild != nil {
		// A rebuild check registers nothing; Rebuild compares.
		r.rebuild.built = nv
		r.rep.event(Event{Kind: EventDone, Elapsed: time.Since(nv.Provenance.StartedAt), Name: summary(r.res)})
		return nil
	}
	return r.register(ctx, nv)
}

func (r *run) describe() string {
	switch {
	case r.parent != nil:
		return "reheat of " + r.parent.String()
	case r.base != nil:
		return "on " + r.base.String()
	case r.startDigest != "":
		return "from origin artifact " + r.startDigest[:19]
	}
	return fmt.Sprintf("fresh bake of %s from %s", r.debian.Suite, r.debian.Mirror)
}

// resolveOrigin decides where the build starts and records the origin.
func (r *run) resolveOrigin(ctx context.Context) error {
	b, img := r.b, r.img
	r.method = kiln.MethodFresh
	if img.Method == string(kiln.MethodReheat) {
		r.method = kiln.MethodReheat
	}
	r.debian = debianOf(r.est, img)
	if r.debian != nil {
		rel, err := debian.FetchRelease(ctx, b.HTTP, r.debian.Mirror, r.debian.Suite)
		if err != nil {
			return err
		}
		r.release = rel
	}
	srcs, err := sources(ctx, r.est, img)
	if err != nil {
		return err
	}
	r.sources = srcs
	if err := r.readAptSources(ctx); err != nil {
		return err
	}
	r.epoch, r.epochFrom = sourceDateEpoch(ctx, r.est, img, r.opts.SourceDateEpoch)
	if rb := r.rebuild; rb != nil {
		r.epoch, r.epochFrom = time.Unix(rb.version.Provenance.SourceDateEpoch, 0).UTC(), rb.version.Provenance.SourceDateEpochFrom
	}
	switch {
	case img.Base != nil:
		v, err := r.baseVersion(ctx)
		if err != nil {
			return err
		}
		ref := v.Ref()
		r.base = &ref
		r.startDigest, r.start = v.Provenance.Artifact.Digest, v.Provenance.Artifact
		r.sources = append(r.sources, kiln.Source{Kind: kiln.SourceOrigin, Ref: ref.String(), Digest: r.startDigest})
	case img.Artifact != nil:
		a, err := r.fetchOrigin(ctx, img.Artifact)
		if err != nil {
			return err
		}
		r.startDigest, r.start = a.Digest, a
		r.sources = append(r.sources, kiln.Source{Kind: kiln.SourceOrigin, Ref: img.Artifact.Source, Digest: a.Digest})
	case img.Debian != nil:
		r.sources = append(r.sources, kiln.Source{Kind: kiln.SourceOrigin, Ref: img.Debian.Suite + "@" + img.Debian.Mirror, Digest: r.release.Digest})
	default:
		return kiln.FieldErrorf(kiln.EINVALID, img.File, "image %q has no origin; add a debian block, base = image.NAME or an origin artifact", img.Name)
	}
	if rb := r.rebuild; rb != nil {
		r.method = rb.version.Provenance.Method
		if p := rb.version.Provenance.Parent; p != nil {
			return r.reheatFrom(ctx, *p)
		}
		return nil
	}
	if r.method == kiln.MethodReheat {
		prev, err := b.Registry.LatestVersion(ctx, img.Name, "")
		switch {
		case kiln.ErrorCode(err) == kiln.ENOTFOUND:
			r.method = kiln.MethodFresh // the first version has nothing to reheat
		case err != nil:
			return fmt.Errorf("find the version to reheat: %w", err)
		default:
			return r.setParent(prev)
		}
	}
	return nil
}

// stepEpoch is the SOURCE_DATE_EPOCH the definition's steps see and their
// layers are clamped to: the date of the Debian Release the image comes
// from, which does not move when the definition is edited (so an edit
// leaves the steps before it cached), else the image's epoch. The release
// layer and the provenance carry the image's epoch (r.epoch).
func (r *run) stepEpoch() time.Time {
	if r.release != nil && !r.release.Date.IsZero() {
		return r.release.Date
	}
	return r.epoch
}

// reheatFrom makes the (rebuild) run start from the recorded parent.
func (r *run) reheatFrom(ctx context.Context, ref kiln.VersionRef) error {
	prev, err := r.b.Registry.FindVersion(ctx, ref)
	if err != nil {
		return fmt.Errorf("find the parent %s: %w", ref, err)
	}
	return r.setParent(prev)
}

func (r *run) setParent(prev *kiln.Version) error {
	if prev.Provenance.Artifact == nil {
		return kiln.Errorf(kiln.EINVALID, "cannot reheat %s: it has no artifact (it was registered by hand); build once with method = \"fresh\"", prev.Name)
	}
	ref := prev.Ref()
	r.parent = &ref
	r.startDigest, r.start = prev.Provenance.Artifact.Digest, prev.Provenance.Artifact
	for _, src := range prev.Provenance.Sources {
		if src.Kind == kiln.SourceOrigin {
			r.parentRelease = src.Digest
		}
	}
	return nil
}

// debianOf returns the Debian archive an image's packages come from: its
// own debian block, or its base image's.
func debianOf(est *definition.Estate, img *definition.Image) *definition.Debian {
	for i := 0; img != nil && i < 64; i++ {
		if img.Debian != nil {
			return img.Debian
		}
		if img.Base == nil || est == nil {
			return nil
		}
		img = est.Images[img.Base.Image]
	}
	return nil
}

func (r *run) baseVersion(ctx context.Context) (*kiln.Version, error) {
	reg, br := r.b.Registry, r.img.Base
	var v *kiln.Version
	var err error
	switch pinned, ok := r.opts.Bases[br.Image]; {
	case ok:
		v, err = reg.FindVersion(ctx, pinned)
	case br.Number > 0:
		v, err = reg.FindVersion(ctx, kiln.VersionRef{Image: br.Image, Number: br.Number})
	default:
		v, err = reg.LatestVersion(ctx, br.Image, kiln.StatusReady)
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			return nil, kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("%s:%d", r.img.File, r.img.Range.Start.Line),
				"base image %s has no ready version; build it in the same run (kiln build DIR %s %s), promote one to ready, or pin base = image.%s.N",
				br.Image, br.Image, r.img.Name, br.Image)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("find base %s: %w", br.Image, err)
	}
	if v.Provenance.Artifact == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "base %s has no artifact to build on (it was registered by hand)", v.Name)
	}
	return v, nil
}

// fetchOrigin puts an external origin artifact into the store and checks
// its digest.
func (r *run) fetchOrigin(ctx context.Context, o *definition.OriginArtifact) (*kiln.Artifact, error) {
	if a, err := r.b.Artifacts.Stat(ctx, o.Digest); err == nil {
		return a, nil
	}
	var rd io.ReadCloser
	if strings.HasPrefix(o.Source, "http://") || strings.HasPrefix(o.Source, "https://") {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.Source, nil)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "artifact.source", "%v", err)
		}
		client := r.b.HTTP
		if client == nil {
			client = http.DefaultClient
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "cannot download origin artifact %s: %v", o.Source, err)
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "cannot download origin artifact %s: %s", o.Source, resp.Status)
		}
		rd = resp.Body
	} else {
		f, err := os.Open(o.Path)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "artifact.source", "cannot read origin artifact: %v", err)
		}
		rd = f
	}
	defer rd.Close()
	a, err := r.b.Artifacts.Put(ctx, rd)
	if err != nil {
		return nil, err
	}
	if a.Digest != o.Digest {
		_ = r.b.Artifacts.Delete(ctx, a.Digest)
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifact.digest", "origin artifact %s has digest %s, not the %s the definition pins; check the file or update the digest", o.Source, a.Digest, o.Digest)
	}
	return a, nil
}

// layers produces (or finds in the cache) every cached layer of the build
// and returns their unpacked trees, bottom first.
func (r *run) layers(ctx context.Context) ([]string, error) {
	r.plan()
	total := r.totalSteps()
	var keys []string
	var key string

	// The start layer.
	t0 := time.Now()
	var startName string
	cached := false
	if r.startDigest == "" {
		startName = fmt.Sprintf("bootstrap %s (%s, %d packages) from %s", r.debian.Suite, variantName(r.debian.Variant), len(r.img.Packages), r.debian.Mirror)
		r.rep.event(Event{Kind: EventStepStart, Step: 1, Steps: total, Name: startName})
		key = bootstrapKey(r.debian, r.img.Packages, r.release, r.pinsDigest())
		var err error
		cached, err = r.bootstrap(ctx, key)
		if err != nil {
			r.rep.event(Event{Kind: EventStepEnd, Step: 1, Steps: total, Elapsed: time.Since(t0), Err: err})
			return nil, err
		}
		r.warmSharedParsed(ctx, key) // aptparsed.go
		keys = []string{key}
	} else {
		startName = "start from " + r.startDigest[:19]
		if r.parent != nil {
			startName = "start from " + r.parent.String()
		} else if r.base != nil {
			startName = "start from " + r.base.String()
		}
		r.rep.event(Event{Kind: EventStepStart, Step: 1, Steps: total, Name: startName})
		key = chainKey("artifact", r.startDigest)
		var err error
		keys, cached, err = r.startStack(ctx, key)
		if err != nil {
			r.rep.event(Event{Kind: EventStepEnd, Step: 1, Steps: total, Elapsed: time.Since(t0), Err: err})
			return nil, fmt.Errorf("unpack %s: %w", startName, err)
		}
		r.ownFrom = len(keys)
	}
	r.stepDone(1, total, startName, cached, t0, "")

	for i, st := range r.steps {
		n := i + 2
		t := time.Now()
		r.rep.event(Event{Kind: EventStepStart, Step: n, Steps: total, Name: st.name})
		// A step sees SOURCE_DATE_EPOCH and its layer holds no later
		// time, so the steps' epoch is part of its key. It is the
		// Release's date, not the image's epoch: editing one step must
		// leave the layers before it cached.
		key = chainKey(key, st.digest+"\nSOURCE_DATE_EPOCH="+epochString(r.stepEpoch()))
		layer, cached, err := r.runStep(ctx, n, st, key, keys)
		if err != nil {
			r.rep.event(Event{Kind: EventStepEnd, Step: n, Steps: total, Name: st.name, Elapsed: time.Since(t), Err: err})
			return nil, fmt.Errorf("step %d (%s): %w", n, st.name, err)
		}
		keys = append(keys, key)
		r.stepDone(n, total, st.name, cached, t, layer)
	}
	r.keys = keys
	trees := make([]string, len(keys))
	for i, k := range keys {
		trees[i] = r.treeOf(k)
	}
	return trees, nil
}

// startStack returns the cache keys of the start artifact's trees, bottom
// first: the stack its build left in the cache, else each of its layers
// unpacked once (by diff ID, so versions sharing a base share the trees),
// else, when those would not fit in one overlay, the whole artifact
// unpacked as one tree under key. The reported bool is true when nothing
// had to be unpacked.
func (r *run) startStack(ctx context.Context, key string) ([]string, bool, error) {
	ls, err := layer.Layers(ctx, r.b.Artifacts, r.start)
	if err != nil {
		return nil, false, err
	}
	r.startLayers = ls
	if stack, ok := r.cache.stack(r.startDigest); ok && r.stackFits(stack) {
		return stack, true, nil
	}
	if len(ls) > 1 {
		keys := make([]string, len(ls))
		for i, l := range ls {
			keys[i] = chainKey("layer", l.DiffID)
		}
		if r.stackFits(keys) {
			cached := true
			for i, l := range ls {
				if !r.cache.hasTree(keys[i]) {
					cached = false
				}
				if err := r.cache.unpack(ctx, r.b.Artifacts, []kiln.Layer{l}, keys[i], true); err != nil {
					return nil, false, err
				}
			}
			return keys, cached, nil
		}
	}
	cached := r.cache.hasTree(key)
	if err := r.cache.unpack(ctx, r.b.Artifacts, ls, key, false); err != nil {
		return nil, false, err
	}
	return []string{key}, cached, nil
}

// maxLowerBytes bounds the overlay's lowerdir option: the kernel takes one
// page of mount options, and every reheat stacks two more layers on its
// parent's. A chain that would pass it starts again from the parent's
// artifact, unpacked as one layer, and the next reheats stack on that.
const maxLowerBytes = 3000

// stackFits reports whether the parent's cached layers and this build's
// steps fit in one overlay mount.
func (r *run) stackFits(stack []string) bool {
	if len(stack) == 0 {
		return false
	}
	return (len(stack)+len(r.steps)+1)*(len(r.cache.tree(stack[0]))+1) <= maxLowerBytes
}

func (r *run) stepDone(n, total int, name string, cached bool, t time.Time, layer string) {
	el := time.Since(t)
	r.rep.event(Event{Kind: EventStepEnd, Step: n, Steps: total, Name: name, Cached: cached, Elapsed: el})
	r.res.Steps = append(r.res.Steps, StepResult{Name: name, Cached: cached, Elapsed: el, Layer: layer})
}

func variantName(v string) string {
	if v == "" {
		return "default variant"
	}
	return v
}

func bootstrapKey(d *definition.Debian, pkgs []string, rel *debian.Release, pins string) string {
	p := slices.Sorted(slices.Values(pkgs))
	// Layout 2: the layer's times are clamped to the Release date on disk
	// too (bake.ClampTree), not only in its tar. Layout 3: the bootstrap
	// writes and removes a dpkg setting during the bake (force-unsafe-io),
	// which leaves /etc/dpkg/dpkg.cfg.d's time at the Release date; a
	// layout-2 tree of the same key differs from today's bake in it.
	b, _ := json.Marshal(struct {
		Suite, Mirror, Variant string
		Components, Packages   []string
		Release                string
		Layout                 int
		Pins                   string `json:",omitempty"`
	}{d.Suite, d.Mirror, d.Variant, d.Components, p, rel.Digest, 3, pins})
	sum := sha256.Sum256(append([]byte("bootstrap\n"), b...))
	return hex.EncodeToString(sum[:])
}

// bootstrap makes the fresh bake's first layer with mmdebstrap, or finds
// it in the cache.
func (r *run) bootstrap(ctx context.Context, key string) (bool, error) {
	if ok, err := r.cached(ctx, key); ok || err != nil {
		return ok, err
	}
	bs := &bake.Bootstrap{
		Suite: r.debian.Suite, Mirror: r.debian.Mirror, Variant: r.debian.Variant,
		Components: r.debian.Components, Include: r.img.Packages, Epoch: r.release.Date,
		UnsafeIO: true, EatMyData: bake.EatMyData(),
	}
	bs.ExportLists, bs.DebCache = r.aptDirs()
	if bs.Lists, bs.ListsPrefix = r.bootstrapLists(); bs.Lists != "" {
		r.rep.logf("apt lists of %s are current (its Release unchanged): the bootstrap skips apt-get update", r.release.URL)
	}
	if r.rebuild != nil {
		bs.Pins = r.rebuild.pins
	}
	// The packages the cache lacks come on several connections while
	// mmdebstrap starts (bake.Prefetch); its setup hook waits for them.
	if bs.Lists != "" && bs.DebCache != "" {
		done := r.w.path("prefetched")
		bs.WaitFor = done
		pf := &bake.Prefetch{Suite: bs.Suite, Mirror: bs.Mirror, Variant: bs.Variant, Components: bs.Components,
			Include: bs.Include, Lists: bs.Lists, DebCache: bs.DebCache, Pins: bs.Pins, HTTP: r.b.HTTP}
		fetched := make(chan struct{})
		pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		go func() {
			defer close(fetched)
			defer cancel()
			t := time.Now()
			n, err := pf.Run(pctx)
			if err != nil {
				r.rep.logf("parallel downloads: %v (apt downloads the rest)", err)
			}
			r.rep.logf("parallel downloads: %d packages in %s", n, time.Since(t).Round(10*time.Millisecond))
			_ = os.WriteFile(done, nil, 0o600)
		}()
		defer func() { <-fetched }()
	}
	// In memory when the machine has it (scratch.go), else on disk.
	base := r.scratch()
	dir := ""
	for {
		where := base
		if where == "" {
			where = r.w.path("disk")
		}
		dir, bs.DecompressOnce = filepath.Join(where, "bootstrap"), filepath.Join(where, "shims")
		if err := os.MkdirAll(where, 0o700); err != nil {
			return false, err
		}
		r.rep.logf("$ mmdebstrap %s", strings.Join(bs.Args(dir, "directory"), " "))
		err := bs.Run(ctx, dir, r.rep)
		if err == nil {
			break
		}
		full := errors.Is(err, bake.ErrNoSpace) || scratchFull(base)
		if base == "" || ctx.Err() != nil || !full {
			return false, err
		}
		r.rep.logf("the bootstrap filled the build's tmpfs (%v): bootstrapping again on disk", err)
		if uerr := r.w.unmount(base); uerr != nil {
			return false, uerr
		}
		base = ""
	}
	// Reproducible layer: no mtime later than the Release date, on disk
	// (where later builds stack it) as in its tar.
	if err := bake.ClampTree(ctx, dir, r.release.Date); err != nil {
		return false, err
	}
	wo := layer.WriteOptions{ClampMtime: r.release.Date}
	if base != "" {
		r.keepFromScratch(ctx, key, "bootstrap", dir, wo)
		return false, nil
	}
	return false, r.keep(ctx, key, "bootstrap", dir, wo)
}

// cached reports whether key's layer is in the cache, unpacking it from
// the artifact store when only the tarball is left.
func (r *run) cached(ctx context.Context, key string) (bool, error) {
	if r.opts.NoCache {
		return false, nil
	}
	e, ok := r.cache.lookup(key)
	if !ok {
		return false, nil
	}
	if r.cache.hasTree(key) {
		return true, nil
	}
	err := r.cache.unpack(ctx, r.b.Artifacts, []kiln.Layer{e.ociLayer()}, key, true)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		r.cache.forget(key)
		return false, nil
	}
	return err == nil, err
}

// keep moves a finished layer directory into the cache and exports it to
// the artifact store in the background; the build waits for every export
// before it registers.
func (r *run) keep(ctx context.Context, key, name, dir string, wo layer.WriteOptions) error {
	tree := r.cache.tree(key)
	if err := os.Rename(dir, tree); err != nil {
		if !r.cache.hasTree(key) {
			return fmt.Errorf("keep layer: %w", err)
		}
		_ = os.RemoveAll(dir) // a concurrent build cached the same key
	}
	r.export(ctx, key, name, tree, wo)
	return nil
}

// export stores the layer tree at dir in the artifact store and records
// it under key, in the background: the build waits for every export
// before it lists its layers (r.bg), and the first failure fails it.
func (r *run) export(ctx context.Context, key, name, dir string, wo layer.WriteOptions) {
	r.bg.Add(1)
	go func() {
		defer r.bg.Done()
		wo.Compression = r.b.LayerCompression
		l, err := layer.Put(ctx, r.b.Artifacts, dir, wo)
		if err == nil {
			err = r.cache.save(entryOf(key, name, l, r.b.Clock().UTC()), "")
		}
		if err != nil {
			r.bgMu.Lock()
			if r.bgErr == nil {
				r.bgErr = fmt.Errorf("store layer of %s: %w", name, err)
			}
			r.bgMu.Unlock()
		}
	}()
}

// runStep runs one step on an overlay of the layers below, or finds its
// layer in the cache.
func (r *run) runStep(ctx context.Context, n int, st *step, key string, below []string) (string, bool, error) {
	if ok, err := r.cached(ctx, key); ok || err != nil {
		return "", ok, err
	}
	d := r.w.path("steps", fmt.Sprint(n))
	o := &overlayfs.Overlay{Lowers: r.topFirst(below), Upper: filepath.Join(d, "upper"), Work: filepath.Join(d, "work"), Target: filepath.Join(d, "merged")}
	if err := r.cache.holdFailure(); err != nil {
		return "", false, err
	}
	if err := r.w.mount(o); err != nil {
		return "", false, err
	}
	err := st.run(ctx, o.Target)
	if uerr := r.w.unmount(o.Target); err == nil {
		err = uerr
	}
	if err != nil {
		return "", false, err
	}
	// What varies per bake (dpkg's and apt's logs, ldconfig's aux cache, …)
	// leaves the step's own layer too, not only the final tree: the
	// release step's scrub would hide it from the files, but the layer's
	// digest, and so the artifact's, would still differ between two bakes.
	if err := scrubLayer(o.Upper); err != nil {
		return "", false, fmt.Errorf("%s: take per-build files out of the layer: %w", st.name, err)
	}
	if err := bake.ClampTree(ctx, o.Upper, r.stepEpoch()); err != nil {
		return "", false, err
	}
	return "", false, r.keep(ctx, key, st.name, o.Upper, layer.WriteOptions{Layer: true, ClampMtime: r.stepEpoch()})
}

func (r *run) topFirst(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[len(keys)-1-i] = r.treeOf(k)
	}
	return out
}

// lockImage serialises builds of one image on this machine, so the
// version number reserved for /etc/kiln-release is the one registered.
func lockImage(dataDir, image string) (func(), error) {
	dir := filepath.Join(dataDir, "build")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".image-"+image+".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock.TryLock(f, flock.Exclusive); err != nil {
		f.Close()
		if !errors.Is(err, flock.ErrHeld) {
			return nil, err
		}
		return nil, kiln.Errorf(kiln.ECONFLICT, "another build of %s is running on this machine; wait for it to finish", image)
	}
	return func() { f.Close() }, nil
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/layer"
)

// Registry is an OCI registry the registry measure runs against, with
// kiln's registry artifact store on it (Drivers.Registry).
type Registry interface {
	// Host is HOST:PORT (plain HTTP on loopback).
	Host() string
	// Storage is the directory the registry keeps everything in.
	Storage() string
	// Push does what a builder does once a version is registered: the
	// version's content into the store's repository, then the image
	// IMAGE:N with its base's layers mounted. It returns the bytes
	// uploaded (what the registry had already is not).
	Push(ctx context.Context, v *kiln.Version, src kiln.ArtifactStore) (int64, error)
	// Pull copies the image's layers into dst, each verified.
	Pull(ctx context.Context, v *kiln.Version, dst kiln.ArtifactStore) error
	// ReadThrough is a second machine's artifact store: a local store in
	// dir that pulls what it lacks from the registry.
	ReadThrough(dir string) (kiln.ArtifactStore, error)
	Close()
}

// RegistryFigures builds the example estate in estateDir (basic-linux,
// then appserver and container-node on it) and measures kiln's OCI
// registry artifact store on it (docs/registry.md): pushing and pulling
// appserver-1 against `skopeo copy` of the same image between the same
// endpoints (an OCI layout on the same disk and a fresh registry; target
// ≤ 1.1×), the bytes uploaded pushing each child version against its own
// layers (≤ 1.1×), what the three images take in the local store and in
// the registry against the full root filesystem tars a version used to
// be, and a launch of appserver-1 on a second machine from a cold cache
// (pull, unpack, boot) against a launch on the builder (unpack, boot).
// Not in --quick: it builds three images and boots two instances.
func RegistryFigures(estateDir string) Measure {
	return Measure{
		ID: "registry", Title: "OCI registry: push/pull vs skopeo copy, child push bytes, storage, launch on a second machine",
		Needs: "root, mmdebstrap, systemd-nspawn, docker-registry and skopeo",
		Check: func(env *Env) error {
			if env.Drivers.Registry == nil {
				return errNoDriver
			}
			if _, err := os.Stat(estateDir); err != nil {
				return fmt.Errorf("no estate at %s (give --estate DIR)", estateDir)
			}
			return needRootTools("mmdebstrap", "systemd-nspawn", "docker-registry", "skopeo")(env)
		},
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			return registryRun(ctx, env, estateDir)
		},
	}
}

// registryRounds is how many times push and pull are timed, each side;
// the median is kept.
const registryRounds = 3

func registryRun(ctx context.Context, env *Env, estateDir string) ([]Figure, error) {
	est, diags := definition.Load(estateDir, definition.Options{})
	if diags.HasErrors() {
		return nil, diags
	}
	dirA := filepath.Join(env.Dir, "builder")
	if err := os.MkdirAll(dirA, 0o755); err != nil {
		return nil, err
	}
	db, _, closeDB, err := env.openSealedStore(ctx)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	artsA, err := env.openArtifacts(dirA)
	if err != nil {
		return nil, err
	}
	for _, n := range est.Order {
		if err := db.CreateImage(ctx, &kiln.Image{Name: n}); err != nil {
			return nil, err
		}
	}
	env.Progressf("registry: building the example estate (%d images)", len(est.Order))
	b := &build.Builder{Registry: db, Artifacts: artsA, DataDir: dirA, Logger: env.Logger}
	res, err := b.BuildAll(ctx, est, nil, build.Options{})
	if err != nil {
		return nil, fmt.Errorf("build the example estate: %w", err)
	}
	byName := map[string]*kiln.Version{}
	var versions []*kiln.Version
	for _, r := range res {
		if r.Version == nil {
			return nil, fmt.Errorf("the build of %s made no version", r.Image)
		}
		versions = append(versions, r.Version)
		byName[r.Image] = r.Version
	}
	app := byName["appserver"]
	if app == nil || app.Provenance.Base == nil {
		return nil, errors.New("the estate has no appserver built on a base; the registry figures use the example estate (examples/estate)")
	}

	// Storage: the full root filesystem tars the three versions used to
	// be, against the layers the local store keeps once each.
	var full, local int64
	seen := map[string]bool{}
	for _, v := range versions {
		n, err := fullTarBytes(ctx, artsA, v.Provenance.Artifact, filepath.Join(env.Dir, "flat"))
		if err != nil {
			return nil, fmt.Errorf("flatten %s: %w", v.Name, err)
		}
		full += n
		for _, d := range v.Provenance.ContentDigests() {
			if seen[d] {
				continue
			}
			seen[d] = true
			a, err := artsA.Stat(ctx, d)
			if err != nil {
				return nil, err
			}
			local += a.Size
		}
	}

	// One registry holding the estate: bases first, each child's upload
	// against its own layers.
	reg, err := env.Drivers.Registry(ctx, filepath.Join(env.Dir, "registry"), env.Logger)
	if err != nil {
		return nil, err
	}
	defer reg.Close()
	var figs []Figure
	for _, v := range versions {
		// What reached the registry is what its storage grew by (blobs,
		// manifests, referrers), not kiln's own count of what it sent.
		before := duBytes(reg.Storage())
		counted, err := reg.Push(ctx, v, artsA)
		if err != nil {
			return nil, fmt.Errorf("push %s: %w", v.Name, err)
		}
		stored := duBytes(reg.Storage()) - before
		base := v.Provenance.Base
		if base == nil {
			continue
		}
		bv := byName[base.Image]
		if bv == nil {
			continue
		}
		own := ownLayerBytes(v.Provenance.Artifact, bv.Provenance.Artifact)
		figs = append(figs, Figure{ID: "registry.child_upload." + v.Image,
			Title: fmt.Sprintf("bytes the registry stored pushing %s (on %s; kiln counted %.2f MiB sent)", v.Name, bv.Name, mib(counted)), Value: mib(stored), Unit: "MiB"}.
			Against("its own layers", mib(own), "MiB").RatioAtMost(1.1))
	}
	regBytes := duBytes(reg.Storage())
	figs = append(figs,
		Figure{ID: "registry.storage.local", Title: "the example estate's 3 versions in the local store (layers, each once)", Value: mib(local), Unit: "MiB"}.
			Against("3 full root filesystem tars", mib(full), "MiB"),
		Figure{ID: "registry.storage.registry", Title: "the example estate's 3 versions in the registry (its storage directory)", Value: mib(regBytes), Unit: "MiB"}.
			Against("3 full root filesystem tars", mib(full), "MiB"))

	// Push and pull of appserver-1 against skopeo copy, each into (and
	// from) a fresh registry.
	push, pull, err := pushPullVsSkopeo(ctx, env, app, artsA)
	if err != nil {
		return figs, err
	}
	figs = append(figs, push, pull)

	// A launch on the builder (artifact local: unpack, boot) against one
	// on a second machine from a cold cache (pull, unpack, boot).
	onA, onB, err := launchTwice(ctx, env, app, artsA, reg)
	if err != nil {
		return figs, err
	}
	figs = append(figs, Seconds("registry.launch.second", "launch "+app.Name+" on a second machine, cold cache: pull + unpack + boot", onB).
		Against("launch on the builder: unpack + boot", onA.Seconds(), "s"))
	return figs, nil
}

// ownLayerBytes is what a's layers that base's artifact does not have
// weigh: a child's own layers.
func ownLayerBytes(a, base *kiln.Artifact) int64 {
	var n int64
	for _, l := range a.Layers {
		if !slices.ContainsFunc(base.Layers, func(b kiln.Layer) bool { return b.Digest == l.Digest }) {
			n += l.Size
		}
	}
	return n
}

// fullTarBytes is the size of the version's whole root filesystem as one
// tar in kiln's artifact format (what a single-tar artifact was): its
// layers applied in order into scratch, then written out.
func fullTarBytes(ctx context.Context, store kiln.ArtifactStore, a *kiln.Artifact, scratch string) (int64, error) {
	if !a.Layered() {
		return a.Size, nil
	}
	defer os.RemoveAll(scratch)
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return 0, err
	}
	for _, l := range a.Layers {
		rc, err := layer.Open(ctx, store, l)
		if err != nil {
			return 0, err
		}
		err = layer.ExtractTar(ctx, rc, scratch, layer.ExtractOptions{Apply: true})
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
	}
	var c counter
	if err := layer.WriteTar(ctx, scratch, &c, layer.WriteOptions{}); err != nil {
		return 0, err
	}
	return int64(c), nil
}

type counter int64

func (c *counter) Write(p []byte) (int, error) { *c += counter(len(p)); return len(p), nil }

func duBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// pushPullVsSkopeo times kiln's push of v into a fresh registry and its
// pull into an empty local store, against `skopeo copy` of the same image
// from an OCI layout on the same disk into a fresh registry and back into
// a fresh layout (blobs as they are: --preserve-digests), alternating.
func pushPullVsSkopeo(ctx context.Context, env *Env, v *kiln.Version, src kiln.ArtifactStore) (push, pull Figure, err error) {
	skopeo, err := exec.LookPath("skopeo")
	if err != nil {
		return push, pull, err
	}
	home := filepath.Join(env.Dir, "skopeo-home") // no user policy, auth or blob-info cache
	policy := filepath.Join(env.Dir, "policy.json")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return push, pull, err
	}
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		return push, pull, err
	}
	sk := func(args ...string) (time.Duration, error) {
		cmd := exec.CommandContext(ctx, skopeo, append([]string{"--policy", policy}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+home)
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("skopeo %v: %w\n%s", args, err, out)
		}
		return time.Since(start), nil
	}
	var kPush, kPull, sPush, sPull []time.Duration
	tag := "/kiln/" + v.Image + ":" + strconv.Itoa(v.Number)
	for i := range registryRounds {
		round := filepath.Join(env.Dir, "round-"+strconv.Itoa(i))
		r1, err := env.Drivers.Registry(ctx, filepath.Join(round, "kiln-registry"), env.Logger)
		if err != nil {
			return push, pull, err
		}
		start := time.Now()
		_, err = r1.Push(ctx, v, src)
		kPush = append(kPush, time.Since(start))
		if err != nil {
			r1.Close()
			return push, pull, err
		}
		dst, err := env.openArtifacts(filepath.Join(round, "pulled"))
		if err != nil {
			r1.Close()
			return push, pull, err
		}
		start = time.Now()
		err = r1.Pull(ctx, v, dst)
		kPull = append(kPull, time.Since(start))
		if err != nil {
			r1.Close()
			return push, pull, err
		}
		// The same image as an OCI layout on the same disk (not timed).
		layout := filepath.Join(round, "layout")
		_, err = sk("copy", "--src-tls-verify=false", "--preserve-digests", "docker://"+r1.Host()+tag, "oci:"+layout+":1")
		r1.Close()
		if err != nil {
			return push, pull, err
		}
		r2, err := env.Drivers.Registry(ctx, filepath.Join(round, "skopeo-registry"), env.Logger)
		if err != nil {
			return push, pull, err
		}
		d, err := sk("copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+layout+":1", "docker://"+r2.Host()+tag)
		sPush = append(sPush, d)
		if err == nil {
			d, err = sk("copy", "--src-tls-verify=false", "--preserve-digests", "docker://"+r2.Host()+tag, "oci:"+filepath.Join(round, "back")+":1")
			sPull = append(sPull, d)
		}
		r2.Close()
		_ = os.RemoveAll(round)
		if err != nil {
			return push, pull, err
		}
		env.Progressf("registry: round %d: kiln push %s pull %s; skopeo copy push %s pull %s", i+1,
			kPush[i].Round(time.Millisecond), kPull[i].Round(time.Millisecond), sPush[i].Round(time.Millisecond), sPull[i].Round(time.Millisecond))
	}
	a := v.Provenance.Artifact
	push = Seconds("registry.push", fmt.Sprintf("push %s (%.0f MiB of layers) to an empty registry", v.Name, mib(a.Size)), median(kPush)).
		Against("skopeo copy, OCI layout → the same registry", median(sPush).Seconds(), "s").RatioAtMost(1.1).
		Noted("median of %d; content into the store's repository, then the image with its layers mounted", registryRounds)
	pull = Seconds("registry.pull", fmt.Sprintf("pull %s into an empty local store, every layer verified", v.Name), median(kPull)).
		Against("skopeo copy, the registry → an OCI layout", median(sPull).Seconds(), "s").RatioAtMost(1.1).
		Noted("median of %d", registryRounds)
	return push, pull, nil
}

// launchTwice boots v on the builder's platform (its artifact local) and
// on a second machine's, whose artifact store reads through reg from an
// empty cache; each instance is destroyed.
func launchTwice(ctx context.Context, env *Env, v *kiln.Version, artsA kiln.ArtifactStore, reg Registry) (onA, onB time.Duration, err error) {
	boot := func(dir string, arts kiln.ArtifactStore, id string) (time.Duration, error) {
		plat, err := env.openPlatform(dir, arts, nil) // from the store, as on a second machine
		if err != nil {
			return 0, err
		}
		start := time.Now()
		_, err = plat.Launch(ctx, kiln.LaunchSpec{ID: id, Name: id, Version: v.Ref(), Artifact: *v.Provenance.Artifact, Timeout: 3 * time.Minute})
		d := time.Since(start)
		if derr := plat.Destroy(context.WithoutCancel(ctx), id); err == nil && derr != nil && kiln.ErrorCode(derr) != kiln.ENOTFOUND {
			err = derr
		}
		return d, err
	}
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	if onA, err = boot(filepath.Join(env.Dir, "builder"), artsA, "bench-reg-a-"+suffix); err != nil {
		return 0, 0, fmt.Errorf("launch on the builder: %w", err)
	}
	dirB := filepath.Join(env.Dir, "second")
	rt, err := reg.ReadThrough(dirB)
	if err != nil {
		return 0, 0, err
	}
	if onB, err = boot(dirB, rt, "bench-reg-b-"+suffix); err != nil {
		return 0, 0, fmt.Errorf("launch on the second machine: %w", err)
	}
	return onA, onB, nil
}

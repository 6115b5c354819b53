package fleet

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
)

// SynthConfig shapes a synthetic fleet.
type SynthConfig struct {
	Images     int // image lines
	Versions   int // versions in all, spread evenly over the images
	Instances  int
	Advisories int // image-level advisories
	// Envs are the environments instances are spread over.
	Envs []string
	Seed uint64
	// Span is how far back the oldest version was built; the newest is
	// built at Clock's start time.
	Span time.Duration
	// CountsOnly writes no instance rows: the same instances are drawn
	// (the same seed gives the same fleet) and only their counts per
	// version and environment go to the store (CountStore), which is all
	// the reports read. Ten million instances take seconds instead of
	// hours; ListInstances and check-ins do not see them.
	CountsOnly bool
}

// CountStore is a store that takes a synthetic fleet's counts directly
// (store.DB.AddSyntheticCounts): SynthConfig.CountsOnly needs it.
type CountStore interface {
	AddSyntheticCounts(ctx context.Context, counts []*kiln.Usage) error
}

// SynthClock is a settable kiln.Clock: the store under a synthetic fleet is
// opened with it, so versions get build times spread over the past.
type SynthClock struct {
	mu sync.Mutex
	t  time.Time
}

// NewSynthClock returns a clock standing at t.
func NewSynthClock(t time.Time) *SynthClock { return &SynthClock{t: t} }

// Now returns the clock's time.
func (c *SynthClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock.
func (c *SynthClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// SynthStore is what the generator writes to.
type SynthStore interface {
	kiln.Registry
	kiln.Fleet
	kiln.AdvisoryStore
}

// synthBatch is how many instances one RegisterInstances transaction holds.
const synthBatch = 20_000

// Synthesize fills st with a deterministic synthetic fleet: cfg.Images
// image lines "img-000"…, their versions built at even steps over cfg.Span
// before the clock's time (every fifth one ready, the rest tested or
// candidate), instances spread over the versions with a bias to recent
// ones, and image-level advisories fixed in random versions. The clock is
// back at its start time when it returns. With cfg.CountsOnly the
// instances are drawn alike but only their counts are stored.
func Synthesize(ctx context.Context, st SynthStore, clock *SynthClock, cfg SynthConfig) error {
	if cfg.Images < 1 || cfg.Versions < cfg.Images || len(cfg.Envs) == 0 {
		return kiln.Errorf(kiln.EINVALID, "synthetic fleet needs ≥ 1 image, ≥ 1 version per image and an environment")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	end := clock.Now()
	defer clock.Set(end)
	perImage := cfg.Versions / cfg.Images
	step := cfg.Span / time.Duration(perImage)
	images := make([]string, cfg.Images)
	for i := range images {
		images[i] = fmt.Sprintf("img-%03d", i)
		if err := st.CreateImage(ctx, &kiln.Image{Name: images[i]}); err != nil {
			return fmt.Errorf("synthesize image %s: %w", images[i], err)
		}
	}
	// Versions are created round-robin so every image's n-th version is
	// built at the same time.
	for n := 1; n <= perImage; n++ {
		clock.Set(end.Add(-time.Duration(perImage-n) * step))
		for _, img := range images {
			v, err := st.CreateVersion(ctx, &kiln.NewVersion{Image: img, Provenance: kiln.Provenance{
				Sources: []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"}},
				Packages: []kiln.Package{
					{Name: "libssl3", Version: fmt.Sprintf("3.0.%d-1~deb12u1", n), Architecture: "amd64", Source: "openssl"},
					{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64"},
				}}})
			if err != nil {
				return fmt.Errorf("synthesize version of %s: %w", img, err)
			}
			if n%5 == 0 || n%5 == 3 {
				if _, err := st.SetStatus(ctx, v.Ref(), kiln.StatusTested, "synthetic"); err != nil {
					return err
				}
			}
			if n%5 == 0 {
				if _, err := st.SetStatus(ctx, v.Ref(), kiln.StatusReady, "synthetic"); err != nil {
					return err
				}
			}
		}
	}
	clock.Set(end)
	counter, _ := st.(CountStore)
	if cfg.CountsOnly && counter == nil {
		return kiln.Errorf(kiln.EINVALID, "synthetic fleet: this store cannot take counts without instances (CountsOnly)")
	}
	// counts[image][number-1][env] when CountsOnly.
	var counts [][][]int
	if cfg.CountsOnly {
		counts = make([][][]int, len(images))
		for i := range counts {
			counts[i] = make([][]int, perImage)
			for n := range counts[i] {
				counts[i][n] = make([]int, len(cfg.Envs))
			}
		}
	}
	batch := make([]*kiln.Instance, 0, synthBatch)
	for i := range cfg.Instances {
		// Squaring a uniform number leans towards the newest versions.
		u := rng.Float64()
		n := perImage - int(u*u*float64(perImage))
		if n < 1 {
			n = 1
		}
		img, env := rng.IntN(len(images)), rng.IntN(len(cfg.Envs))
		launched := end.Add(-time.Duration(rng.Int64N(int64(cfg.Span))))
		if cfg.CountsOnly {
			counts[img][n-1][env]++
			continue
		}
		batch = append(batch, &kiln.Instance{
			ID:          fmt.Sprintf("i-%08d", i),
			Version:     kiln.VersionRef{Image: images[img], Number: n},
			Environment: cfg.Envs[env],
			LaunchedAt:  launched,
		})
		if len(batch) == synthBatch || i == cfg.Instances-1 {
			if err := st.RegisterInstances(ctx, batch, kiln.RegisterOptions{}); err != nil {
				return fmt.Errorf("synthesize instances: %w", err)
			}
			batch = batch[:0]
		}
	}
	if cfg.CountsOnly {
		var us []*kiln.Usage
		for i, img := range images {
			for n, byEnv := range counts[i] {
				for e, c := range byEnv {
					if c > 0 {
						us = append(us, &kiln.Usage{Image: img, Number: n + 1, Environment: cfg.Envs[e], Instances: c})
					}
				}
			}
		}
		if err := counter.AddSyntheticCounts(ctx, us); err != nil {
			return fmt.Errorf("synthesize instance counts: %w", err)
		}
	}
	var advs []*kiln.Advisory
	for i := range cfg.Advisories {
		fixed := map[string]bool{}
		adv := &kiln.Advisory{ID: fmt.Sprintf("SYNTH-%04d", i), Source: kiln.AdvisoryManual}
		for range 1 + rng.IntN(3) {
			img := images[rng.IntN(len(images))]
			if fixed[img] {
				continue
			}
			fixed[img] = true
			adv.FixedIn = append(adv.FixedIn, kiln.VersionRef{Image: img, Number: 1 + rng.IntN(perImage)})
		}
		advs = append(advs, adv)
	}
	if len(advs) > 0 {
		if _, err := st.PutAdvisories(ctx, advs); err != nil {
			return fmt.Errorf("synthesize advisories: %w", err)
		}
	}
	return nil
}

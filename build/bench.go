package build

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// BenchOptions says what Bench builds and where.
type BenchOptions struct {
	// DataDir is a scratch data directory (artifacts, cache, build dirs);
	// use an empty one so the first bake is not cached.
	DataDir string
	// Registry records the bench image's versions: give a throwaway one.
	Registry kiln.Registry
	// Artifacts keeps the benchmark's versions (required).
	Artifacts kiln.ArtifactStore
	// Suite, Mirror, Variant default to bookworm, deb.debian.org, minbase.
	Suite, Mirror, Variant string
	// Packages are installed by both the raw mmdebstrap and kiln's bake.
	Packages []string
	// Extra is the package the reheat adds (default "hello"), Extra2 the
	// one the line's next reheat adds (default "tree").
	Extra, Extra2 string
	// Rounds repeats the raw and fresh bakes, alternating which goes
	// first, and keeps the fastest of each (default 1): the mirror and a
	// shared machine make single runs noisy.
	Rounds   int
	Progress io.Writer
	Logger   *slog.Logger
}

// BenchResult holds the build figures of one Bench run.
type BenchResult struct {
	Suite    string
	Variant  string
	Packages []string
	Extra    string
	Extra2   string
	// Raw is plain mmdebstrap writing a tarball (the fastest of Rounds).
	Raw time.Duration
	// Fresh is kiln's full fresh bake (no step cache, package cache
	// emptied first so it downloads as much as Raw; fastest of Rounds) of
	// the same packages, registered; Ratio is Fresh/Raw (target ≤ 1.2).
	Fresh time.Duration
	Ratio float64
	// FreshFirst is the first fresh bake, into a data directory that has
	// no apt lists yet, so its bootstrap downloads them as raw mmdebstrap
	// does; later bakes find them current and skip apt-get update.
	FreshFirst time.Duration
	// FreshWarm is one more fresh bake with the package cache the earlier
	// bakes filled (what a build server usually sees).
	FreshWarm time.Duration
	// Cached is the rebuild with nothing changed (target ≤ 1 s).
	Cached time.Duration
	// Reheat is the reheat of the fresh version with Extra added
	// (target ≤ 5 s). It is the image line's first apt step, which
	// copies the mirror's lists to the line and parses them once.
	Reheat time.Duration
	// ReheatAgain is the line's next reheat, of Reheat's version with
	// Extra2 added: what a routine reheat of a line built before costs.
	ReheatAgain time.Duration
	// ArtifactSize is the fresh artifact's size in bytes (the sum of its
	// compressed layers).
	ArtifactSize int64
	// FreshSteps are the steps of the fastest fresh bake (bootstrap,
	// release file and artifact), ReheatSteps the reheat's (start, apt,
	// release file and artifact): where the time went.
	FreshSteps, ReheatSteps, ReheatAgainSteps []StepResult
}

// Step returns the elapsed time of the first step whose name starts with
// prefix (0 when none does).
func Step(steps []StepResult, prefix string) time.Duration {
	for _, s := range steps {
		if strings.HasPrefix(s.Name, prefix) {
			return s.Elapsed
		}
	}
	return 0
}

// Targets the issue sets for the figures.
const (
	TargetRatio  = 1.2
	TargetCached = time.Second
	TargetReheat = 5 * time.Second
)

// String renders the figures as a small table with the targets.
func (r *BenchResult) String() string {
	ok := func(b bool) string {
		if b {
			return "ok"
		}
		return "MISSED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "build benchmark: %s %s, packages [%s], reheat adds %s\n", r.Suite, r.Variant, strings.Join(r.Packages, " "), r.Extra)
	fmt.Fprintf(&b, "  raw mmdebstrap         %8s\n", round(r.Raw))
	fmt.Fprintf(&b, "  kiln fresh bake        %8s   ratio %.2f (target ≤ %.1f: %s; package cache emptied, downloads like raw)\n", round(r.Fresh), r.Ratio, TargetRatio, ok(r.Ratio <= TargetRatio))
	fmt.Fprintf(&b, "  fresh, packages cached %8s   ratio %.2f\n", round(r.FreshWarm), r.FreshWarm.Seconds()/r.Raw.Seconds())
	fmt.Fprintf(&b, "  cached rebuild         %8s   (target ≤ %s: %s)\n", round(r.Cached), TargetCached, ok(r.Cached <= TargetCached))
	fmt.Fprintf(&b, "  reheat + 1 package     %8s   (target ≤ %s: %s)\n", round(r.Reheat), TargetReheat, ok(r.Reheat <= TargetReheat))
	fmt.Fprintf(&b, "    of which apt %s, release file and artifact %s; fresh bake: bootstrap %s, release file and artifact %s\n",
		round(Step(r.ReheatSteps, "apt")), round(Step(r.ReheatSteps, "release")), round(Step(r.FreshSteps, "bootstrap")), round(Step(r.FreshSteps, "release")))
	fmt.Fprintf(&b, "  the line's next reheat %8s   (adds %s; apt %s)\n", round(r.ReheatAgain), r.Extra2, round(Step(r.ReheatAgainSteps, "apt")))
	fmt.Fprintf(&b, "  artifact size          %8.1f MiB (its layers, compressed)\n", float64(r.ArtifactSize)/(1<<20))
	return b.String()
}

// Bench measures, in one run on the same package set: raw mmdebstrap, a
// kiln fresh bake (cache off), a rebuild with nothing changed, and a reheat
// adding one package. It registers versions of an image named
// "kiln-bench" in opts.Registry.
func Bench(ctx context.Context, opts BenchOptions) (*BenchResult, error) {
	if opts.Suite == "" {
		opts.Suite = "bookworm"
	}
	if opts.Mirror == "" {
		opts.Mirror = "http://deb.debian.org/debian"
	}
	if opts.Variant == "" {
		opts.Variant = "minbase"
	}
	if opts.Extra == "" {
		opts.Extra = "hello"
	}
	if opts.Extra2 == "" {
		opts.Extra2 = "tree"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	if opts.Artifacts == nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts", "the build benchmark needs an artifact store for its versions")
	}
	res := &BenchResult{Suite: opts.Suite, Variant: opts.Variant, Packages: opts.Packages, Extra: opts.Extra, Extra2: opts.Extra2}
	deb := &definition.Debian{Suite: opts.Suite, Mirror: opts.Mirror, Variant: opts.Variant, Components: []string{"main"}}

	rel, err := debian.FetchRelease(ctx, nil, opts.Mirror, opts.Suite)
	if err != nil {
		return nil, err
	}
	raw := filepath.Join(opts.DataDir, "bench-raw.tar")
	defer os.Remove(raw)
	bs := &bake.Bootstrap{Suite: opts.Suite, Mirror: opts.Mirror, Variant: opts.Variant, Components: deb.Components, Include: opts.Packages, Epoch: rel.Date}
	rawBake := func() error {
		fmt.Fprintf(opts.Progress, "==> raw mmdebstrap %s\n", strings.Join(bs.Args(raw, ""), " "))
		t := time.Now()
		if err := bs.Command(ctx, raw, "", io.Discard).Run(); err != nil {
			return fmt.Errorf("raw mmdebstrap: %w", err)
		}
		if d := time.Since(t); res.Raw == 0 || d < res.Raw {
			res.Raw = d
		}
		return os.Remove(raw)
	}

	b := &Builder{Registry: opts.Registry, Artifacts: opts.Artifacts, DataDir: opts.DataDir, Logger: opts.Logger}
	img := benchImage(deb, "fresh", opts.Packages)
	est := &definition.Estate{Images: map[string]*definition.Image{img.Name: img}, Order: []string{img.Name}}
	bo := Options{Progress: opts.Progress, BuiltBy: "kiln bench"}
	debs := filepath.Join(opts.DataDir, "cache", "apt", "archives")
	warm := false
	freshBake := func() error {
		if !warm { // start without packages, as raw mmdebstrap does
			old, _ := filepath.Glob(filepath.Join(debs, "*.deb"))
			for _, p := range old {
				if err := os.Remove(p); err != nil {
					return err
				}
			}
		}
		t := time.Now()
		fresh, err := b.Build(ctx, est, img, Options{Progress: opts.Progress, BuiltBy: bo.BuiltBy, NoCache: true, Force: true})
		if err != nil {
			return err
		}
		d := time.Since(t)
		if !warm && res.FreshFirst == 0 {
			res.FreshFirst = d
		}
		switch {
		case warm:
			res.FreshWarm = d
		case res.Fresh == 0 || d < res.Fresh:
			res.Fresh, res.FreshSteps = d, fresh.Steps
		}
		res.ArtifactSize = fresh.Version.Provenance.Artifact.Size
		return nil
	}
	if opts.Rounds < 1 {
		opts.Rounds = 1
	}
	for i := 0; i < opts.Rounds; i++ {
		first, second := rawBake, freshBake
		if i%2 == 1 {
			first, second = freshBake, rawBake
		}
		if err := first(); err != nil {
			return nil, err
		}
		if err := second(); err != nil {
			return nil, err
		}
	}
	res.Ratio = res.Fresh.Seconds() / res.Raw.Seconds()
	warm = true
	if err := freshBake(); err != nil {
		return nil, err
	}

	t := time.Now()
	again, err := b.Build(ctx, est, img, bo)
	if err != nil {
		return nil, err
	}
	res.Cached = time.Since(t)
	if !again.UpToDate {
		return nil, fmt.Errorf("bench: the rebuild with nothing changed made %s instead of reporting up to date", again.Version.Name)
	}

	re := benchImage(deb, "reheat", append(append([]string(nil), opts.Packages...), opts.Extra))
	est.Images[re.Name] = re
	t = time.Now()
	rr, err := b.Build(ctx, est, re, bo)
	if err != nil {
		return nil, err
	}
	res.Reheat, res.ReheatSteps = time.Since(t), rr.Steps

	// The line's lists and parsed lists are in place now, as for every
	// reheat of a line after its first apt step.
	re2 := benchImage(deb, "reheat", append(append([]string(nil), re.Packages...), opts.Extra2))
	est.Images[re2.Name] = re2
	t = time.Now()
	rr2, err := b.Build(ctx, est, re2, bo)
	if err != nil {
		return nil, err
	}
	if rr2.Version.Provenance.Parent == nil || rr2.Version.Provenance.Parent.Number != rr.Version.Number {
		return nil, fmt.Errorf("bench: the second reheat built %s on %v, not on %s", rr2.Version.Name, rr2.Version.Provenance.Parent, rr.Version.Name)
	}
	res.ReheatAgain, res.ReheatAgainSteps = time.Since(t), rr2.Steps
	return res, nil
}

func benchImage(deb *definition.Debian, method string, pkgs []string) *definition.Image {
	img := &definition.Image{Name: "kiln-bench", File: "bench.kiln.hcl", Debian: deb, Method: method, Packages: pkgs}
	img.Digest = jsonDigest(struct {
		Debian   *definition.Debian
		Method   string
		Packages []string
	}{deb, method, pkgs})
	return img
}

package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
)

// Rebuild is `kiln version rebuild --check` on the estate in estateDir
// (the example estate): basic-linux baked fresh (no step cache) and
// checked, the check timed against the bake; then every image of the
// estate baked and checked, and the share that rebuilds bit for bit
// (target: all, 3 of 3 for the example estate). A check reuses the
// package cache the bakes filled, as it does on a builder.
func Rebuild(estateDir string) Measure {
	return Measure{
		ID: "rebuild", Title: "rebuild check against a fresh bake, and the estate's images that rebuild bit for bit",
		Needs: "root, mmdebstrap and systemd-nspawn",
		Check: func(env *Env) error {
			if _, err := os.Stat(estateDir); err != nil {
				return fmt.Errorf("no estate at %s (give --estate DIR)", estateDir)
			}
			return needRootTools("mmdebstrap", "systemd-nspawn")(env)
		},
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			return rebuildRun(ctx, env, estateDir)
		},
	}
}

func rebuildRun(ctx context.Context, env *Env, estateDir string) ([]Figure, error) {
	est, diags := definition.Load(estateDir, definition.Options{})
	if diags.HasErrors() {
		return nil, diags
	}
	db, _, closeDB, err := env.openSealedStore(ctx)
	if err != nil {
		return nil, err
	}
	defer closeDB()
	arts, err := env.openArtifacts(env.Dir)
	if err != nil {
		return nil, err
	}
	for _, n := range est.Order {
		if err := db.CreateImage(ctx, &kiln.Image{Name: n}); err != nil {
			return nil, err
		}
	}
	b := &build.Builder{Registry: db, Artifacts: arts, DataDir: env.Dir, Logger: env.Logger}
	const first = "basic-linux"
	if est.Images[first] == nil {
		return nil, fmt.Errorf("the estate at %s has no image %s to time the rebuild check on", estateDir, first)
	}
	bases := map[string]kiln.VersionRef{}
	var figs []Figure
	var identical, checked []string
	var different []string
	for _, name := range append([]string{first}, without(est.Order, first)...) {
		t0 := time.Now()
		res, err := b.Build(ctx, est, est.Images[name], build.Options{NoCache: true, Force: true, Bases: bases})
		if err != nil {
			return figs, fmt.Errorf("fresh bake of %s: %w", name, err)
		}
		bake := time.Since(t0)
		v := res.Version
		bases[name] = v.Ref()
		env.Progressf("rebuild: %s baked fresh in %s; checking", v.Name, bake.Round(time.Millisecond))
		rep, err := b.Rebuild(ctx, est, v.Ref(), build.RebuildOptions{})
		if err != nil {
			return figs, fmt.Errorf("rebuild check of %s: %w", v.Name, err)
		}
		checked = append(checked, name)
		if rep.Identical {
			identical = append(identical, name)
		} else {
			different = append(different, fmt.Sprintf("%s (%d files differ, first %s)", name, len(rep.Files), firstFile(rep)))
		}
		env.Progressf("rebuild: %s checked in %s: identical %v", v.Name, rep.Elapsed.Round(time.Millisecond), rep.Identical)
		for i, f := range rep.Files {
			if i == 10 {
				env.Progressf("rebuild:   … %d more", len(rep.Files)-i)
				break
			}
			env.Progressf("rebuild:   %s  %s  (%s)", f.Path, strings.Join(f.What, ", "), f.Step)
		}
		for _, p := range rep.Packages {
			env.Progressf("rebuild:   package %s: recorded %s, rebuilt %s", p.Name, p.Recorded, p.Rebuilt)
		}
		if name == first {
			figs = append(figs,
				Seconds("rebuild.fresh", "fresh bake of basic-linux (no step cache)", bake),
				Seconds("rebuild.check", "rebuild check of basic-linux", rep.Elapsed).Against("fresh bake", bake.Seconds(), "s").
					Noted("package versions pinned from the manifest, packages cached by the bake; identical: %v", rep.Identical))
		}
	}
	share := Figure{ID: "rebuild.share", Title: "example estate images that rebuild bit for bit", Value: float64(len(identical)), Unit: fmt.Sprintf("of %d", len(checked))}.
		AtLeast(float64(len(checked)))
	if len(different) > 0 {
		share = share.Noted("different: %s", strings.Join(different, "; "))
	} else {
		share = share.Noted("%s", strings.Join(identical, ", "))
	}
	return append(figs, share), nil
}

func without(xs []string, x string) []string {
	var out []string
	for _, y := range xs {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

func firstFile(rep *build.RebuildReport) string {
	if len(rep.Files) == 0 {
		return "(packages differ)"
	}
	return rep.Files[0].Path
}

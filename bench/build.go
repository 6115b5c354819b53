package bench

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"time"

	"github.com/kiln-project/kiln/build"
)

// Build is the build figures of build.Bench on one throwaway data
// directory: raw mmdebstrap against kiln's fresh bake (package cache
// emptied for both), the bake with packages cached, the cached rebuild and
// the reheat adding one package.
func Build() Measure {
	return Measure{
		ID: "build", Title: "raw mmdebstrap vs fresh bake, cached rebuild, reheat + 1 package", Quick: true,
		Needs: "root, mmdebstrap and systemd-nspawn",
		Check: needRootTools("mmdebstrap", "systemd-nspawn"),
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			db, closeDB, err := env.openStore(ctx, "sqlite", time.Now)
			if err != nil {
				return nil, err
			}
			defer closeDB()
			arts, err := env.openArtifacts(env.Dir)
			if err != nil {
				return nil, err
			}
			rounds := 2
			if env.Quick {
				rounds = 1
			}
			res, err := build.Bench(ctx, build.BenchOptions{DataDir: env.Dir, Registry: db, Artifacts: arts,
				Mirror: env.Mirror, Rounds: rounds, Progress: env.Progress, Logger: env.Logger})
			if err != nil {
				return nil, err
			}
			raw := res.Raw.Seconds()
			note := "minbase " + res.Suite
			return []Figure{
				Seconds("build.raw", "raw mmdebstrap", res.Raw).Noted("%s, package cache empty, fastest of %d", note, rounds),
				Seconds("build.fresh", "kiln fresh bake", res.Fresh).Against("raw", raw, "s").RatioAtMost(0.7).Noted("package cache emptied as for raw; fastest of %d, the lists current after the first", rounds),
				Seconds("build.fresh-first", "kiln fresh bake, apt lists not yet cached", res.FreshFirst).Against("raw", raw, "s").Noted("the first bake of an empty data directory: downloads the lists as raw does"),
				Seconds("build.fresh-warm", "kiln fresh bake, packages cached", res.FreshWarm).Against("raw", raw, "s"),
				Millis("build.cached", "cached rebuild", res.Cached).AtMost(1000),
				Seconds("build.reheat", "reheat + 1 package", res.Reheat).AtMost(1.5).Noted("adds %s; the image line's first apt step (copies and parses the mirror's lists)", res.Extra),
				Seconds("build.reheat.apt", "reheat: its apt step", build.Step(res.ReheatSteps, "apt")),
				Seconds("build.reheat-again", "reheat + 1 package, the line's next reheat", res.ReheatAgain).AtMost(1.5).Noted("adds %s on the reheat above; the line's lists already parsed", res.Extra2),
				Seconds("build.reheat-again.apt", "the line's next reheat: its apt step", build.Step(res.ReheatAgainSteps, "apt")),
				Seconds("build.reheat.release", "reheat: release file and artifact", build.Step(res.ReheatSteps, "release")),
				Seconds("build.fresh.bootstrap", "fresh bake: its mmdebstrap step", build.Step(res.FreshSteps, "bootstrap")),
				Seconds("build.fresh.release", "fresh bake: release file and artifact", build.Step(res.FreshSteps, "release")),
				{ID: "build.size", Title: "fresh artifact size", Value: float64(res.ArtifactSize) / (1 << 20), Unit: "MiB"},
			}, nil
		},
	}
}

// needRootTools checks for root and the named commands.
func needRootTools(cmds ...string) func(*Env) error {
	return func(*Env) error {
		if os.Geteuid() != 0 {
			return errors.New("needs root")
		}
		for _, c := range cmds {
			if _, err := exec.LookPath(c); err != nil {
				return errors.New("needs " + c + " (not on PATH)")
			}
		}
		return nil
	}
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
)

// Pipeline runs the pipelines of the estate in estateDir (the example
// estate: basic-linux, then appserver and container-node on it — build,
// test on a real instance, scan, ready, delivery up to the prod approval)
// in a fresh data directory, cold (nothing cached, every package
// downloaded; target 30 s), then again with nothing changed.
func Pipeline(estateDir string) Measure {
	return Measure{
		ID: "pipeline", Title: "example estate pipeline, cold and unchanged", Quick: true,
		Needs: "root, mmdebstrap and systemd-nspawn",
		Check: func(env *Env) error {
			if _, err := os.Stat(estateDir); err != nil {
				return fmt.Errorf("no estate at %s (give --estate DIR)", estateDir)
			}
			return needRootTools("mmdebstrap", "systemd-nspawn")(env)
		},
		Run: func(ctx context.Context, env *Env) ([]Figure, error) {
			cold, unchanged, err := pipelineRun(ctx, env, estateDir)
			if err != nil {
				return nil, err
			}
			return []Figure{
				Seconds("pipeline.cold", "example estate pipeline, cold", cold).AtMost(30).Noted("3 images built, tested, scanned, delivered to the prod approval"),
				Millis("pipeline.unchanged", "example estate pipeline, nothing changed", unchanged),
			}, nil
		},
	}
}

func pipelineRun(ctx context.Context, env *Env, estateDir string) (cold, unchanged time.Duration, err error) {
	est, diags := definition.Load(estateDir, definition.Options{})
	if diags.HasErrors() {
		return 0, 0, diags
	}
	data := env.Dir
	db, signer, closeDB, err := env.openSealedStore(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer closeDB()
	arts, err := env.openArtifacts(data)
	if err != nil {
		return 0, 0, err
	}
	// As cmd/kiln wires it: the test stage takes the build's layer trees.
	plat, err := env.openPlatform(data, arts, &build.Trees{DataDir: data, Logger: env.Logger})
	if err != nil {
		return 0, 0, err
	}
	for _, n := range est.Order {
		if err := db.CreateImage(ctx, &kiln.Image{Name: n}); err != nil {
			return 0, 0, err
		}
	}
	r := &pipeline.Runner{Store: db, Registry: db, Advisories: db, Logger: env.Logger, Progress: env.Progress,
		Builder: &build.Builder{Registry: db, Artifacts: arts, DataDir: data, Logger: env.Logger},
		Tester: &pipeline.Tester{Registry: db, Artifacts: arts, Logger: env.Logger,
			Launcher: &launch.Launcher{Registry: db, Platform: plat, Inventory: db, Key: signer.Public(), Logger: env.Logger}},
		LoadEstate: func(string, map[string]string) (*definition.Estate, error) { return est, nil },
		Poll:       50 * time.Millisecond,
		Parallel:   2, // appserver and container-node side by side once basic-linux is ready
	}
	pass := func(name string) (time.Duration, error) {
		start := time.Now()
		runs, err := pipeline.Enqueue(ctx, db, est, nil, nil, name, false)
		if err != nil {
			return 0, err
		}
		ids := make([]int64, len(runs))
		for i, run := range runs {
			ids[i] = run.ID
		}
		if err := r.Wait(ctx, ids); err != nil {
			return 0, err
		}
		d := time.Since(start)
		var errs []error
		for _, id := range ids {
			run, err := db.FindRun(ctx, id)
			if err != nil {
				return 0, err
			}
			if run.Status != kiln.RunSucceeded && run.Status != kiln.RunWaiting {
				errs = append(errs, fmt.Errorf("%s run %d of %s: %s (%s)", name, run.ID, run.Image, run.Status, run.Reason))
			}
		}
		return d, errors.Join(errs...)
	}
	if cold, err = pass("cold"); err != nil {
		return 0, 0, err
	}
	unchanged, err = pass("unchanged")
	return cold, unchanged, err
}

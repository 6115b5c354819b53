package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/testenv"
	"github.com/kiln-project/kiln/launch"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/store"
)

// BenchmarkPipelineExampleEstate runs the example estate's pipelines
// (basic-linux, then appserver and container-node on it: build, test,
// scan, ready, delivery up to the prod approval) in a fresh data
// directory — cold: nothing cached, every package downloaded — and then
// again with nothing changed. It reports cold_s and unchanged_s:
//
//	go test ./pipeline -run '^$' -bench PipelineExampleEstate -benchtime 1x -v
func BenchmarkPipelineExampleEstate(b *testing.B) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			b.Fatal("the pipeline benchmark needs root (CI=true: failing instead of skipping)")
		}
		b.Skip("the pipeline benchmark needs root, mmdebstrap and systemd-nspawn")
	}
	ctx := context.Background()
	est, diags := definition.Load("../examples/estate", definition.Options{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	var progress io.Writer
	if testing.Verbose() {
		progress = os.Stderr
	}
	for range b.N {
		data := b.TempDir()
		logger := slog.New(slog.DiscardHandler)
		db, err := store.Open(ctx, "", data, logger, time.Now)
		if err != nil {
			b.Fatal(err)
		}
		key := testenv.Sign(b, db)
		arts, err := artifact.Open(data)
		if err != nil {
			b.Fatal(err)
		}
		exe, _ := os.Executable()
		plat, err := local.New(local.Config{DataDir: data, Artifacts: arts, ProbeBinary: exe, Supervisor: []string{exe, "__supervise"}, Logger: logger})
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range est.Order {
			if err := db.CreateImage(ctx, &kiln.Image{Name: n}); err != nil {
				b.Fatal(err)
			}
		}
		r := &pipeline.Runner{Store: db, Registry: db, Advisories: db, Logger: logger, Progress: progress,
			Builder: &build.Builder{Registry: db, Artifacts: arts, DataDir: data, Logger: logger},
			Tester: &pipeline.Tester{Registry: db, Artifacts: arts, Logger: logger,
				Launcher: &launch.Launcher{Registry: db, Platform: plat, Inventory: db, Key: key, Logger: logger}},
			LoadEstate: func(string, map[string]string) (*definition.Estate, error) { return est, nil },
			Poll:       50 * time.Millisecond,
		}
		pass := func(name string) time.Duration {
			start := time.Now()
			runs, err := pipeline.Enqueue(ctx, db, est, nil, nil, name, false)
			if err != nil {
				b.Fatal(err)
			}
			ids := make([]int64, len(runs))
			for i, run := range runs {
				ids[i] = run.ID
			}
			if err := r.Wait(ctx, ids); err != nil {
				b.Fatal(err)
			}
			d := time.Since(start)
			for _, id := range ids {
				run, _ := db.FindRun(ctx, id)
				if run.Status != kiln.RunSucceeded && run.Status != kiln.RunWaiting {
					b.Fatalf("%s run %d of %s: %s (%s)", name, run.ID, run.Image, run.Status, run.Reason)
				}
				b.Logf("%s: run %d %s %s %s in %s", name, run.ID, run.Image, run.Status, run.Version, run.Elapsed(time.Now()).Round(100*time.Millisecond))
			}
			return d
		}
		cold := pass("cold")
		unchanged := pass("unchanged")
		b.ReportMetric(cold.Seconds(), "cold_s")
		b.ReportMetric(unchanged.Seconds(), "unchanged_s")
		b.Logf("example estate pipeline: cold %s, unchanged %s", cold.Round(100*time.Millisecond), unchanged.Round(10*time.Millisecond))
		db.Close()
	}
}

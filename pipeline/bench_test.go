package pipeline_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/kiln-project/kiln/bench"
	"github.com/kiln-project/kiln/internal/benchdrivers"
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
	var progress io.Writer
	if testing.Verbose() {
		progress = os.Stderr
	}
	m := bench.Pipeline("../examples/estate")
	for range b.N {
		figs, err := m.Run(context.Background(), &bench.Env{Dir: b.TempDir(), Drivers: benchdrivers.Real(), Logger: slog.New(slog.DiscardHandler), Progress: progress})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(figs[0].Value, "cold_s")
		b.ReportMetric(figs[1].Value/1000, "unchanged_s")
		b.Logf("example estate pipeline: cold %.1f s, unchanged %.0f ms", figs[0].Value, figs[1].Value)
	}
}

package build

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/store"
)

// BenchmarkBuild runs Bench once per iteration in a fresh data directory
// and reports its figures (seconds; ratio fresh/raw):
//
//	go test ./build -run '^$' -bench Build -benchtime 1x
func BenchmarkBuild(b *testing.B) {
	if os.Geteuid() != 0 || !onPath("mmdebstrap") || !onPath("systemd-nspawn") {
		if os.Getenv("CI") == "true" {
			b.Fatal("the build benchmark needs root, mmdebstrap and systemd-nspawn")
		}
		b.Skip("the build benchmark needs root, mmdebstrap and systemd-nspawn")
	}
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		reg, err := store.Open(ctx, "", dir, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			b.Fatal(err)
		}
		arts, err := artifact.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		opts := BenchOptions{DataDir: dir, Registry: reg, Artifacts: arts, Mirror: mirror(), Rounds: 2}
		if testing.Verbose() {
			opts.Progress = os.Stderr
		}
		res, err := Bench(ctx, opts)
		reg.Close()
		if err != nil {
			b.Fatal(err)
		}
		b.Log("\n" + res.String())
		b.ReportMetric(res.Raw.Seconds(), "raw-s")
		b.ReportMetric(res.Fresh.Seconds(), "fresh-s")
		b.ReportMetric(res.Ratio, "fresh/raw")
		b.ReportMetric(res.FreshWarm.Seconds(), "fresh-warm-s")
		b.ReportMetric(res.Cached.Seconds(), "cached-s")
		b.ReportMetric(res.Reheat.Seconds(), "reheat-s")
	}
}

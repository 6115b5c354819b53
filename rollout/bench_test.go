package rollout

import (
	"context"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// BenchmarkRollout8x2 rolls a service of 8 instances between two versions
// in batches of 2 (bake 1 s) while 4 loopback workers send requests
// through the front end without pause. Run it with -benchtime 1x (each
// rollout takes tens of seconds); it reports the rollout's time, the time
// per batch, and the requests sent and failed (must be 0).
func BenchmarkRollout8x2(b *testing.B) {
	v1 := variant(b, map[string]string{"srv/www/index.html": bodyOf(1), "srv/www/healthz": "ok\n"})
	v2 := variant(b, map[string]string{"srv/www/index.html": bodyOf(2), "srv/www/healthz": "ok\n"})
	e := newEnv(b, []string{v1, v2}, 8, 2, time.Second)
	e.engine.Progress = nil
	ctx := context.Background()
	if r, err := e.engine.Start(ctx, "web", kiln.VersionRef{Image: "appserver", Number: 1}, Options{}); err != nil || r.State != kiln.RolloutSucceeded {
		b.Fatalf("initial rollout: %+v %v", r, err)
	}
	var total, batches time.Duration
	var nBatches, sent, failed int
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		to := kiln.VersionRef{Image: "appserver", Number: 2 - i%2}
		l := startLoad(e.front, 4, 10_000_000, 10*time.Minute)
		t0 := time.Now()
		r, err := e.engine.Start(ctx, "web", to, Options{})
		took := time.Since(t0)
		l.stop()
		if err != nil || r.State != kiln.RolloutSucceeded {
			b.Fatalf("rollout to %s: %+v %v", to, r, err)
		}
		total += took
		for _, d := range r.BatchTimes {
			batches += d
			nBatches++
		}
		sent += l.sent
		failed += len(l.failed)
		b.Logf("rollout to %s: %s, batches %v; load %s", to, took.Round(time.Millisecond), r.BatchTimes, l)
		if len(l.failed) > 0 {
			b.Errorf("%d requests failed, first: %s", len(l.failed), l.failed[0])
		}
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(total.Seconds()/n, "s/rollout")
	b.ReportMetric(batches.Seconds()/float64(max(nBatches, 1)), "s/batch")
	b.ReportMetric(float64(sent)/n, "requests/rollout")
	b.ReportMetric(float64(failed)/n, "failed/rollout")
}

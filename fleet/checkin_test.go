package fleet_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// writersFleet makes the batcher run several transactions at once, as it
// does on PostgreSQL, on whatever store it wraps.
type writersFleet struct {
	kiln.Fleet
	n int
}

func (w writersFleet) CheckinWriters() int { return w.n }

// TestBatcher sends concurrent check-ins (new instances and repeats)
// through batchers with one and with three writers on a real SQLite store,
// and checks every caller's answer and the resulting report.
func TestBatcher(t *testing.T) {
	for _, writers := range []int{1, 3} {
		t.Run(fmt.Sprint(writers), func(t *testing.T) {
			ctx := context.Background()
			db := openBackend(t, "sqlite", time.Now)
			if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver"}); err != nil {
					t.Fatal(err)
				}
			}
			b := fleet.NewBatcher(writersFleet{Fleet: db, n: writers}, 16)
			var wg sync.WaitGroup
			errs := make(chan error, 400)
			for i := range 400 {
				wg.Go(func() {
					id := fmt.Sprintf("i-%03d", i%100)
					res, err := b.CheckIn(ctx, &kiln.Checkin{InstanceID: id, Environment: "prod",
						Release: map[string]string{"image": "appserver", "version": fmt.Sprint(1 + i/200)}})
					switch {
					case err != nil:
						errs <- err
					case res.Instance.ID != id:
						errs <- fmt.Errorf("check-in of %s answered with %s", id, res.Instance.ID)
					}
				})
			}
			wg.Wait()
			b.Close()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if _, err := b.CheckIn(ctx, &kiln.Checkin{InstanceID: "late", Release: map[string]string{"image": "appserver", "version": "1"}}); !errors.Is(err, fleet.ErrBatcherClosed) {
				t.Errorf("check-in after Close: %v", err)
			}
			rep, err := fleet.New(db, db).Report(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Instances != 100 {
				t.Errorf("report counts %d instances, want 100", rep.Instances)
			}
		})
	}
}

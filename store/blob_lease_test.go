package store

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

const (
	blobA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	blobB = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	blobC = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func leased(t *testing.T, db *DB) []string {
	t.Helper()
	m, err := db.LeasedBlobs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(m))
}

// Leases are seen by LeasedBlobs until released or ended; a lease written
// while a gc holds the mark says so (and which gc); the mark is held by
// one gc at a time, renewed by its holder only, taken over once it has
// ended (the old holder's renewal then refused), and each gc begun adds
// one to the generation.
func TestBlobLeases(t *testing.T) {
	eachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const b1, b2, gc1, gc2 = "kiln build, pid 1 on alpha, run 1", "kiln build, pid 2 on beta, run 2", "kiln artifact gc, pid 3 on alpha, run 3", "kiln artifact gc, pid 4 on beta, run 4"
		hour := time.Hour

		m, err := e.LeaseBlobs(ctx, b1, []string{blobA, blobB, blobA}, hour)
		if err != nil {
			t.Fatal(err)
		}
		if m.Running || m.Generation != 0 || m.Holder != "" {
			t.Errorf("the mark as the first lease read it: %+v; want no gc ever", m)
		}
		if _, err := e.LeaseBlobs(ctx, b2, []string{blobB}, hour); err != nil {
			t.Fatal(err)
		}
		if got := leased(t, e.DB); !slices.Equal(got, []string{blobA, blobB}) {
			t.Errorf("leased = %v; want a and b", got)
		}

		g, err := e.BeginBlobGC(ctx, gc1, hour)
		if err != nil {
			t.Fatal(err)
		}
		if !g.Running || g.Generation != 1 || g.Holder != gc1 {
			t.Errorf("BeginBlobGC = %+v; want generation 1 held by %s", g, gc1)
		}
		// A lease under the mark: the build learns a gc is deleting.
		m, err = e.LeaseBlobs(ctx, b1, []string{blobC}, hour)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Running || m.Holder != gc1 || m.Generation != 1 {
			t.Errorf("the mark as a lease under gc1 read it: %+v; want gc1 running", m)
		}
		msg := wantCode(t, func() error { _, err := e.BeginBlobGC(ctx, gc2, hour); return err }(), kiln.ECONFLICT)
		wantContains(t, msg, "another artifact gc is deleting blobs: "+gc1, "lasts until", "wait for it to end")
		if err := e.RenewBlobGC(ctx, gc1, hour); err != nil {
			t.Errorf("renew by the holder: %v", err)
		}
		wantCode(t, e.RenewBlobGC(ctx, gc2, hour), kiln.ECONFLICT)

		// Released: b1's leases go, b2's stays.
		if err := e.ReleaseBlobs(ctx, b1); err != nil {
			t.Fatal(err)
		}
		if got := leased(t, e.DB); !slices.Equal(got, []string{blobB}) {
			t.Errorf("leased after b1's release = %v; want b only", got)
		}
		if err := e.EndBlobGC(ctx, gc2); err != nil { // not its mark: nothing
			t.Fatal(err)
		}
		if m, err := e.BlobGCMark(ctx); err != nil || !m.Running || m.Holder != gc1 {
			t.Errorf("mark after another's EndBlobGC = %+v, %v; want gc1's still", m, err)
		}
		if err := e.EndBlobGC(ctx, gc1); err != nil {
			t.Fatal(err)
		}
		if m, err := e.BlobGCMark(ctx); err != nil || m.Running || m.Holder != "" || m.Generation != 1 {
			t.Errorf("mark after the end = %+v, %v; want none running, generation 1", m, err)
		}
		wantContains(t, wantCode(t, e.RenewBlobGC(ctx, gc1, hour), kiln.ECONFLICT), "was released", "stops deleting")

		// Ending by themselves: the store's clock moves one second per
		// reading, so a two-second lease or mark has ended two writes on.
		if _, err := e.LeaseBlobs(ctx, b1, []string{blobA}, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := e.BeginBlobGC(ctx, gc1, 2*time.Second); err != nil {
			t.Fatal(err)
		}
		if got := leased(t, e.DB); !slices.Equal(got, []string{blobB}) {
			t.Errorf("leased once a's lease ended = %v; want b only", got)
		}
		g, err = e.BeginBlobGC(ctx, gc2, hour)
		if err != nil {
			t.Fatalf("taking over an ended mark: %v", err)
		}
		if g.Generation != 3 || g.Holder != gc2 {
			t.Errorf("mark taken over = %+v; want generation 3 held by gc2", g)
		}
		wantContains(t, wantCode(t, e.RenewBlobGC(ctx, gc1, hour), kiln.ECONFLICT), "taken over by "+gc2)
		count := func() int {
			t.Helper()
			var n int
			if err := e.raw.QueryRow(e.rebind(`SELECT COUNT(*) FROM blob_leases WHERE holder = ?`), b1).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := count(); n != 1 {
			t.Errorf("b1's ended lease rows = %d before another lease drops them; want 1", n)
		}
		if _, err := e.LeaseBlobs(ctx, b2, []string{blobB}, hour); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Errorf("b1's ended lease rows after another lease = %d; want them dropped", n)
		}

		// Bad input names the field.
		wantContains(t, wantCode(t, func() error { _, err := e.LeaseBlobs(ctx, "", []string{blobA}, hour); return err }(), kiln.EINVALID), "holder")
		wantContains(t, wantCode(t, func() error { _, err := e.LeaseBlobs(ctx, b1, []string{blobA, "md5:x"}, hour); return err }(), kiln.EINVALID), "digests[1]")
		wantContains(t, wantCode(t, func() error { _, err := e.BeginBlobGC(ctx, gc1, 0); return err }(), kiln.EINVALID), "ttl")
	})
}

// On PostgreSQL a lease written while a gc's mark is being taken (its
// transaction not yet committed) waits for it and reads it as running:
// the lease is never invisible to a gc that did not tell the build.
func TestBlobLeaseWaitsForMark(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "postgres")
	ctx := context.Background()
	gcTx, err := e.raw.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = gcTx.Rollback() }()
	if _, err := gcTx.Exec(`UPDATE blob_gc SET generation = generation + 1, holder = 'gc', lease_until = now() + interval '1 hour' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		m   *kiln.BlobGC
		err error
	}
	done := make(chan result, 1)
	go func() {
		m, err := e.LeaseBlobs(ctx, "build", []string{blobA}, time.Hour)
		done <- result{m, err}
	}()
	// Wait until the lease's transaction is blocked on the row lock (a
	// backend of this schema waiting for a lock on a query of blob_gc).
	for {
		var n int
		if err := e.raw.QueryRow(`SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM blob_gc%FOR SHARE%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("the lease did not wait for the uncommitted mark: %+v, %v", r.m, r.err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := gcTx.Commit(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.m.Running || r.m.Holder != "gc" || r.m.Generation != 1 {
		t.Errorf("the lease read the mark as %+v; want gc's, running, generation 1", r.m)
	}
	if !strings.Contains(strings.Join(leased(t, e.DB), " "), blobA) {
		t.Error("the lease was not written")
	}
}

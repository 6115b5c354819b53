package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// Retention against concurrent builds on other machines (docs/registry.md,
// "Builds and gc at once"). A build's content may already be in the
// registry, as a revoked version's (the same layer, reproducible or
// cached): its upload is then a no-op, and a gc that deletes that blob
// afterwards would leave the version it records pointing at nothing. So:
//
//  1. the build leases its content's digests (a committed row) before it
//     checks or uploads anything, and releases them once its version is
//     recorded and pushed (the version then keeps them);
//  2. gc takes the gc mark before it reads the leases, then reads the
//     leases, then the versions, and deletes only what neither names,
//     renewing the mark before each blob;
//  3. the lease and the mark exclude each other in the database (one row),
//     so either the lease came first and the gc sees it, or the mark came
//     first and the lease says a gc is running: the build then waits for
//     that gc to end and checks (re-uploads) its content again, after
//     which nothing that gc deletes can be its content, and any later gc
//     sees the lease;
//  4. leases are read before versions: a build that recorded its version
//     and released its lease before the gc read the leases had recorded
//     the version before the gc read the versions.
//
// Leases and the mark end by themselves: a killed build or gc blocks
// nothing forever.

// leaseTime is how long a build's lease lasts: longer than everything the
// build does under it (the upload, the record, the image's push).
const leaseTime = publishTimeout + recordTimeout + 5*time.Minute

// gcMarkTime is how long gc's mark lasts unless renewed; gc renews it
// before each blob and gives each blob's deletes half of it, so a gc whose
// mark ended has no delete in flight.
const gcMarkTime = 2 * time.Minute

// processName names this process for leases and marks: program and
// command, pid, host, and a random run id (two builds in one kiln serve
// have two).
func processName(what string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "(unknown)"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s, pid %d on host %s, run %s", what, os.Getpid(), host, hex.EncodeToString(b[:]))
}

// leaseContent leases digests for holder and returns the gc mark as the
// lease read it.
func leaseContent(ctx context.Context, leases kiln.BlobLeases, holder string, digests []string) (*kiln.BlobGC, error) {
	m, err := leases.LeaseBlobs(ctx, holder, digests, leaseTime)
	if err != nil {
		return nil, fmt.Errorf("lease the content against artifact gc: %w", err)
	}
	return m, nil
}

// waitForGC reads the mark first after gcPollFirst, then at doubling
// intervals up to gcPollMax.
const (
	gcPollFirst = 100 * time.Millisecond
	gcPollMax   = 5 * time.Second
)

// waitForGC returns once the gc that held mark m (as a lease read it) has
// ended: its mark released or ended, or another gc begun after it.
func waitForGC(ctx context.Context, leases kiln.BlobLeases, m *kiln.BlobGC, logger *slog.Logger) error {
	delay := gcPollFirst
	for logged := false; ; logged = true {
		cur, err := leases.BlobGCMark(ctx)
		if err != nil {
			return fmt.Errorf("wait for artifact gc to end: %w", err)
		}
		if !cur.Running || cur.Generation != m.Generation {
			return nil
		}
		if !logged {
			logger.Info("an artifact gc is deleting blobs: waiting for it to end to check this build's content in the registry again",
				"gc", cur.Holder, "until", cur.Until)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for artifact gc (%s) to end: %w", cur.Holder, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, gcPollMax)
	}
}

package kiln

import (
	"context"
	"time"
)

// BlobLeases keeps the content a build is about to reference safe from
// `kiln artifact gc` on any machine that shares the database. A build
// leases the digests of its content before it checks or uploads them in
// the registry, and releases them once its version is recorded (the
// version then keeps them); gc holds the one gc mark while it deletes
// blobs and never deletes a leased digest.
//
// The order that makes it hold (docs/registry.md): the lease and the gc
// mark are written in transactions that exclude each other (one row), so
// either the lease was written first and the gc, which reads the leases
// after taking its mark, sees it; or the gc's mark was there first, the
// lease says so (BlobGC.Running), and the build checks its content again
// once that gc has ended. A lease and a mark both end by themselves
// (their holder may be killed): times are the store's clock, ttl counts
// from the store's now.
type BlobLeases interface {
	// LeaseBlobs records holder's lease on digests for ttl (a renewal
	// for digests it holds already), drops leases that have ended, and
	// returns the gc mark as it was when the lease was written.
	// EINVALID for an empty holder, a bad digest or a ttl ≤ 0.
	LeaseBlobs(ctx context.Context, holder string, digests []string, ttl time.Duration) (*BlobGC, error)
	// ReleaseBlobs ends every lease of holder; nothing happens when it
	// holds none.
	ReleaseBlobs(ctx context.Context, holder string) error
	// LeasedBlobs returns the digests some holder's lease covers now.
	LeasedBlobs(ctx context.Context) (map[string]bool, error)
	// BlobGCMark reads the gc mark.
	BlobGCMark(ctx context.Context) (*BlobGC, error)
	// BeginBlobGC makes holder the one gc that deletes blobs, for ttl,
	// and starts a new gc generation. ECONFLICT naming the holder and its
	// mark's end when another gc holds a mark that has not ended.
	BeginBlobGC(ctx context.Context, holder string, ttl time.Duration) (*BlobGC, error)
	// RenewBlobGC extends holder's mark to ttl from now; ECONFLICT when
	// holder no longer holds it (it ended, and another gc may have begun):
	// the gc must stop deleting.
	RenewBlobGC(ctx context.Context, holder string, ttl time.Duration) error
	// EndBlobGC ends holder's mark; nothing happens when it holds none.
	EndBlobGC(ctx context.Context, holder string) error
}

// BlobGC is the gc mark: which gc, if any, is deleting blobs.
type BlobGC struct {
	// Generation counts the gcs begun; each BeginBlobGC adds one.
	Generation int64 `json:"generation"`
	// Holder names the gc process holding the mark; "" when none does.
	Holder string `json:"holder,omitempty"`
	// Until is when the mark ends unless renewed.
	Until time.Time `json:"until,omitzero"`
	// Running says a gc held the mark (not ended) when it was read.
	Running bool `json:"running"`
}

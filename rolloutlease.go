package kiln

import (
	"context"
	"time"
)

// RolloutLeaser makes one process at a time the runner of a rollout. The
// process running a rollout holds its lease and renews it while it runs;
// another process (a second kiln serve, or `kiln rollout --resume` on the
// same machine) may take the rollout over only once the lease has ended,
// because its owner died or stopped without releasing it. Times are the
// store's clock: ttl counts from the store's now.
type RolloutLeaser interface {
	// AcquireRollout makes owner the runner of unfinished rollout id for
	// ttl, in one conditional update: when nobody holds it, its lease has
	// ended, or owner holds it already. ECONFLICT naming the holder and its
	// lease's end otherwise, or when the rollout has ended; ENOTFOUND for
	// no such rollout.
	AcquireRollout(ctx context.Context, id int64, owner string, ttl time.Duration) error
	// RenewRollout extends owner's lease on rollout id to ttl from now;
	// ECONFLICT when owner no longer holds it (another process took it
	// over after the lease ended) or the rollout has ended.
	RenewRollout(ctx context.Context, id int64, owner string, ttl time.Duration) error
	// ReleaseRollout ends owner's lease on rollout id, so another process
	// may resume it at once; nothing happens when owner does not hold it.
	ReleaseRollout(ctx context.Context, id int64, owner string) error
}

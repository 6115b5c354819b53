package kiln

import (
	"context"
	"time"
)

// Fleet answers questions about the whole estate. Counting happens in the
// store; the fleet package turns usage rows into reports.
//
// Errors: EINVALID for bad input, ENOTFOUND for an unknown image version
// (unless allowed), ECONFLICT for an instance name taken by another id,
// EUNAVAILABLE when the database cannot be reached.
type Fleet interface {
	// Usage returns one row per image version and environment with at
	// least one instance not destroyed, sorted by image, number,
	// environment.
	Usage(ctx context.Context, f UsageFilter) ([]*Usage, error)
	// RegisterInstances records instances in one transaction: all or none.
	// An error about one of them has Field "instances[i]".
	RegisterInstances(ctx context.Context, insts []*Instance, opts RegisterOptions) error
	// CheckIn upserts instances by id in one transaction and sets their
	// last-seen time; a lost instance is running again. Versions unknown to
	// the registry are accepted and flagged. A check-in for an instance
	// kiln launched, or bound to another agent token, is refused alone:
	// its result has only Refused set, and the others are recorded.
	CheckIn(ctx context.Context, cs []*Checkin) ([]*CheckinResult, error)
	// MarkLost marks instances not launched by kiln (platform other than
	// "local") that were last seen (or, never seen, launched) before cutoff
	// as lost, and returns how many.
	MarkLost(ctx context.Context, cutoff time.Time) (int, error)
	// Manifests returns every version of every image in number order with
	// the installed packages whose name or source package is in sources.
	Manifests(ctx context.Context, sources []string) ([]*PackageManifest, error)

	SetAgePolicy(ctx context.Context, p *AgePolicy) error
	AgePolicies(ctx context.Context) ([]*AgePolicy, error)
	// DeleteAgePolicy removes an environment's limit; ENOTFOUND when none.
	DeleteAgePolicy(ctx context.Context, env string) error
}

// RegisterOptions change how instances are registered.
type RegisterOptions struct {
	// AllowUnknown keeps instances whose image or version the registry does
	// not know; reports flag them. Without it such an instance is ENOTFOUND.
	AllowUnknown bool
	// Where names where each instance came from ("hosts.csv:7"), for
	// errors; instances[i] when empty.
	Where []string
}

package kiln

import (
	"context"
	"regexp"
	"time"
)

// Channel is an environment's pointer at one version of an image line:
// what "the version in prod of appserver" means.
type Channel struct {
	Image       string     `json:"image"`
	Environment string     `json:"environment"`
	Version     VersionRef `json:"version"`
	Name        string     `json:"name"`
	UpdatedAt   time.Time  `json:"updated_at"`
	UpdatedBy   string     `json:"updated_by"`
	// Revoked is set by FindChannel when the version the channel points
	// at is revoked: Version (and Name) are then the fallback, the newest
	// version the channel held that is not revoked.
	Revoked *VersionRef `json:"revoked,omitempty"`
}

var envRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// ValidateEnvironment checks an environment (channel) name: dev, staging, prod.
func ValidateEnvironment(field, env string) error {
	if !envRE.MatchString(env) {
		return FieldErrorf(EINVALID, field, "environment %q is not allowed; use 1–32 lowercase letters, digits and dashes, starting with a letter (e.g. staging)", env)
	}
	return nil
}

// DefaultEnvironments are the delivery environments, in order, when a
// pipeline does not name its own.
var DefaultEnvironments = []string{"dev", "staging", "prod"}

// PromotionKind tells a promotion from a rollback.
type PromotionKind string

const (
	PromotionPromote  PromotionKind = "promote"
	PromotionRollback PromotionKind = "rollback"
)

// Promotion is one recorded move of a channel.
type Promotion struct {
	ID          int64         `json:"id"`
	Image       string        `json:"image"`
	Environment string        `json:"environment"`
	Kind        PromotionKind `json:"kind"`
	// Number is the version the channel points at after the move, Previous
	// the one before (0: none).
	Number   int       `json:"number"`
	Previous int       `json:"previous,omitempty"`
	Actor    string    `json:"actor"`
	Reason   string    `json:"reason,omitempty"`
	Time     time.Time `json:"time"`
}

// ChannelStore keeps channels and their promotions. Promote and Rollback
// record the promotion, move the channel and queue "promoted" webhooks in
// one transaction.
//
// Errors: ENOTFOUND for an unknown version or channel; ECONFLICT when a
// version is not ready, has not been in the previous environment, or there
// is nothing to roll back to.
type ChannelStore interface {
	// Channels lists channels of image (all images when empty).
	Channels(ctx context.Context, image string) ([]*Channel, error)
	// FindChannel resolves a channel: the version it points at, or, when
	// that is revoked, the newest non-revoked version it held before
	// (Revoked names the one skipped); ECONFLICT when it never held one.
	FindChannel(ctx context.Context, image, env string) (*Channel, error)
	// Promote points env at ref; previous names the environment the
	// version must have been promoted to before ("" for the first).
	Promote(ctx context.Context, ref VersionRef, env, previous, reason string) (*Promotion, error)
	// Rollback points env back at the version it held before its latest
	// promotion. When that version is revoked the rollback is refused
	// (ECONFLICT naming the revocation — who, why, when — and the next
	// version back in the channel's history that is neither revoked nor
	// failed) unless force is set: then it is done and audited
	// (channel.rollback.forced), and the channel resolves as a channel on
	// a revoked version does (FindChannel).
	Rollback(ctx context.Context, image, env, reason string, force bool) (*Promotion, error)
	// Promotions lists moves newest first; empty image or env do not filter.
	Promotions(ctx context.Context, image, env string, limit int) ([]*Promotion, error)
}

package kiln

import (
	"context"
	"fmt"
	"time"
)

// Revocation records why a version is revoked. Revoking a version revokes
// every version built on it (its Base or Parent, transitively) in the same
// transaction: those carry Through, the revoked ancestor that caused it.
type Revocation struct {
	Version VersionRef `json:"version"`
	// Through is the directly revoked ancestor this version was revoked
	// with; nil when it was revoked itself.
	Through *VersionRef `json:"through,omitempty"`
	Reason  string      `json:"reason,omitempty"`
	Actor   string      `json:"actor"`
	At      time.Time   `json:"at"`
	// Previous is the status a restore returns the version to.
	Previous Status `json:"previous"`
}

// ScheduledRevocation is a revocation to apply at a later time
// (`kiln version revoke IMAGE-N --at TIME`).
type ScheduledRevocation struct {
	Version   VersionRef `json:"version"`
	At        time.Time  `json:"at"`
	Reason    string     `json:"reason,omitempty"`
	Actor     string     `json:"actor"`
	CreatedAt time.Time  `json:"created_at"`
}

// Revoked reports whether v must not be used: revoked itself or through
// an ancestor. Launching it needs an explicit, audited force.
func (v *Version) Revoked() bool { return v != nil && v.Status == StatusRevoked }

// RevokedError is the refusal to use a revoked version, naming why and
// how to go on; ECONFLICT.
func RevokedError(v *Version) error {
	r := v.Revocation
	switch {
	case r == nil:
		return Errorf(ECONFLICT, "%s is revoked and must not be used; pick another version (`kiln version latest %s`) or force it knowingly", v.Name, v.Image)
	case r.Through != nil:
		return Errorf(ECONFLICT, "%s is revoked through its ancestor %s (%s, by %s at %s); pick another version (`kiln version latest %s`), restore %s, or force it knowingly",
			v.Name, r.Through, orNoReason(r.Reason), r.Actor, r.At.UTC().Format(time.RFC3339), v.Image, r.Through)
	default:
		return Errorf(ECONFLICT, "%s is revoked (%s, by %s at %s); pick another version (`kiln version latest %s`), restore it, or force it knowingly",
			v.Name, orNoReason(r.Reason), r.Actor, r.At.UTC().Format(time.RFC3339), v.Image)
	}
}

// DescribeRevocation says how v is revoked, with the reason, the actor and
// the time: "revoked (REASON, by ACTOR at TIME)" or "revoked through
// ANCESTOR (REASON, by ACTOR at TIME)"; "revoked" when kiln kept no record.
func DescribeRevocation(v *Version) string {
	r := v.Revocation
	switch {
	case r == nil:
		return "revoked"
	case r.Through != nil:
		return fmt.Sprintf("revoked through its ancestor %s (%s, by %s at %s)", r.Through, orNoReason(r.Reason), r.Actor, r.At.UTC().Format(time.RFC3339))
	default:
		return fmt.Sprintf("revoked (%s, by %s at %s)", orNoReason(r.Reason), r.Actor, r.At.UTC().Format(time.RFC3339))
	}
}

func orNoReason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// Revoker revokes versions with everything built on them, restores them,
// and keeps scheduled revocations. Every method runs in one transaction,
// audited.
//
// Errors: ENOTFOUND for an unknown version; ECONFLICT for a version whose
// status cannot be revoked (a candidate, tested or failed one; revoke only
// what was released), a restore of a version that is not revoked itself,
// or a schedule of a version already revoked.
type Revoker interface {
	// Revoke revokes ref and every version built on it that is not
	// revoked or failed already. The first revocation is ref's own.
	Revoke(ctx context.Context, ref VersionRef, reason string) ([]*Revocation, error)
	// Restore undoes ref's own revocation and those it caused, except for
	// versions still revoked through another ancestor. It returns the
	// versions restored.
	Restore(ctx context.Context, ref VersionRef, reason string) ([]VersionRef, error)
	// ScheduleRevocation records a revocation for at; ApplyDueRevocations
	// applies it. An at not after now is refused (EINVALID on "at"): call
	// Revoke to revoke now. Scheduling a version that has a pending
	// revocation replaces it (time, reason and actor).
	ScheduleRevocation(ctx context.Context, ref VersionRef, at time.Time, reason string) (*ScheduledRevocation, error)
	// ScheduledRevocations lists pending revocations, soonest first.
	ScheduledRevocations(ctx context.Context) ([]*ScheduledRevocation, error)
	// CancelScheduledRevocation drops ref's pending revocation.
	CancelScheduledRevocation(ctx context.Context, ref VersionRef) error
	// ApplyDueRevocations revokes the versions whose scheduled time has
	// come, as the actor who scheduled them; a server calls it
	// periodically. A schedule that can no longer apply (the version was
	// revoked meanwhile) is dropped and audited.
	ApplyDueRevocations(ctx context.Context) ([]*Revocation, error)
}

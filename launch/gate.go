package launch

import (
	"time"

	kiln "github.com/kiln-project/kiln"
)

// Gate is a caller's rule on which versions it launches: it returns the
// refusal, or nil. A Gate also says how to refuse a version without an
// artifact in the caller's words; nil lets every built version launch.
type Gate func(v *kiln.Version) error

// Usable is the rule of `kiln instance launch`: any built version that is
// not failed. A revoked version is refused by Check itself unless the
// request forces it.
func Usable(v *kiln.Version) error {
	if v.Provenance.Artifact == nil {
		return kiln.Errorf(kiln.EINVALID, "%s has no artifact recorded; only built versions can be launched", v.Ref())
	}
	if v.Status == kiln.StatusFailed {
		return kiln.Errorf(kiln.ECONFLICT, "%s is %s and must not be launched", v.Ref(), v.Status)
	}
	return nil
}

// Ready is the rule of a rollout: ready versions, and tested ones when
// allowUnready (--allow-unready). A revoked one is refused with its
// revocation: the reason, who, when, and the revoked ancestor it was
// revoked through.
func Ready(allowUnready bool) Gate {
	return func(v *kiln.Version) error {
		if v.Revoked() {
			return revokedTarget(v)
		}
		if v.Provenance.Artifact == nil {
			return kiln.Errorf(kiln.EINVALID, "%s has no artifact recorded; only built versions can be rolled out", v.Ref())
		}
		switch {
		case v.Status == kiln.StatusReady:
		case v.Status == kiln.StatusTested && allowUnready:
		default:
			return kiln.Errorf(kiln.ECONFLICT, "%s is %s; only ready versions are rolled out (tested ones with --allow-unready)", v.Ref(), v.Status)
		}
		return nil
	}
}

// Candidate is the rule of the test stage: candidates, or any status for
// a retest (--retest), which does not move the status.
func Candidate(retest bool) Gate {
	return func(v *kiln.Version) error {
		if v.Status != kiln.StatusCandidate && !retest {
			return kiln.Errorf(kiln.ECONFLICT, "%s is %s; the test stage takes candidates only (use --retest to run the tests again without changing its status)", v.Ref(), v.Status)
		}
		if v.Provenance.Artifact == nil {
			return kiln.Errorf(kiln.EINVALID, "%s has no artifact recorded, so no instance can be made from it; build it with `kiln build`", v.Ref())
		}
		return nil
	}
}

// revokedTarget refuses to roll out revoked version v, naming why.
func revokedTarget(v *kiln.Version) error {
	r := v.Revocation
	switch {
	case r == nil:
		return kiln.Errorf(kiln.ECONFLICT, "%s is revoked and is not rolled out (only ready versions are rolled out); roll out another version (`kiln version latest %s`)", v.Ref(), v.Image)
	case r.Through != nil:
		return kiln.Errorf(kiln.ECONFLICT, "%s is revoked through its ancestor %s (%s, by %s at %s) and is not rolled out (only ready versions are rolled out); roll out another version (`kiln version latest %s`), or restore %s if its revocation was a mistake",
			v.Ref(), r.Through, orNoReason(r.Reason), r.Actor, r.At.UTC().Format(time.RFC3339), v.Image, r.Through)
	default:
		return kiln.Errorf(kiln.ECONFLICT, "%s is revoked (%s, by %s at %s) and is not rolled out (only ready versions are rolled out); roll out another version (`kiln version latest %s`)",
			v.Ref(), orNoReason(r.Reason), r.Actor, r.At.UTC().Format(time.RFC3339), v.Image)
	}
}

func orNoReason(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

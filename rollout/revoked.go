package rollout

import (
	"context"
	"fmt"
	"slices"

	"github.com/kiln-project/kiln"
)

// revokedRollback says why a failed rollout of svc must not roll back
// onto r.From: it is revoked (itself or through an ancestor) since the
// rollout began. "" when From is not revoked (or there is no From). The
// refusal names the revocation (who, why, when) and the next candidate:
// the newest ready version of the image older than From that is not
// revoked, to roll out explicitly.
func (e *Engine) revokedRollback(ctx context.Context, svc *kiln.Service, r *kiln.Rollout) (string, error) {
	if r.From.IsZero() || e.Registry == nil {
		return "", nil
	}
	from, err := e.Registry.FindVersion(ctx, r.From)
	if err != nil {
		return "", err
	}
	if !from.Revoked() {
		return "", nil
	}
	next, err := readyBefore(ctx, e.Registry, from.Image, from.Number, r.To.Number)
	if err != nil {
		return "", err
	}
	instead := fmt.Sprintf("no earlier ready version of %s is free of revocation: roll out a fixed one (`kiln version latest %s`)", from.Image, from.Image)
	if next != nil {
		instead = fmt.Sprintf("the next ready version back that is not revoked is %s: `kiln rollout %s --to %s`", next.Name, svc.Name, next.Name)
	}
	return fmt.Sprintf("not rolled back onto %s, which is %s; the instances already on %s are kept; %s", from.Name, kiln.DescribeRevocation(from), r.To, instead), nil
}

// readyBefore returns the newest ready version of image numbered below
// before, other than skip, that is not revoked; nil when there is none.
func readyBefore(ctx context.Context, reg kiln.Registry, image string, before, skip int) (*kiln.Version, error) {
	vs, _, err := reg.ListVersions(ctx, kiln.VersionFilter{Image: image, Status: []kiln.Status{kiln.StatusReady}})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(vs, func(a, b *kiln.Version) int { return b.Number - a.Number })
	for _, v := range vs {
		if v.Number < before && v.Number != skip && !v.Revoked() {
			return v, nil
		}
	}
	return nil, nil
}

// refuseRevokedTarget refuses a rollout of svc to a revoked version (a
// rollout never forces one) before anything is recorded. Rolling a
// service back to an older version that is revoked names the next ready
// version back that is not revoked.
func (e *Engine) refuseRevokedTarget(ctx context.Context, svc *kiln.Service, to kiln.VersionRef) error {
	if e.Registry == nil {
		return nil
	}
	v, err := e.Registry.FindVersion(ctx, to)
	if err != nil {
		return err
	}
	if !v.Revoked() {
		return nil
	}
	if svc.Version.IsZero() || to.Number >= svc.Version.Number {
		return nil // not a rollback: the launcher's gate refuses it as it refuses any revoked target
	}
	next, err := readyBefore(ctx, e.Registry, to.Image, to.Number, svc.Version.Number)
	if err != nil {
		return err
	}
	instead := fmt.Sprintf("no earlier ready version of %s is free of revocation: roll out a fixed one (`kiln version latest %s`)", to.Image, to.Image)
	if next != nil {
		instead = fmt.Sprintf("the next ready version back that is not revoked is %s: `kiln rollout %s --to %s`", next.Name, svc.Name, next.Name)
	}
	return kiln.Errorf(kiln.ECONFLICT, "rolling %s back from %s to %s would land on a revoked version: %s is %s; %s. Rollouts never force a revoked version; launch one by hand with `kiln instance launch %s --force` (audited) if you must",
		svc.Name, svc.Version, v.Name, v.Name, kiln.DescribeRevocation(v), instead, v.Name)
}

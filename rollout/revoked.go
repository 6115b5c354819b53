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

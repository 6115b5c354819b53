package fleet

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// rowKey is an image version.
type rowKey = kiln.VersionRef

// rows merges usage rows of the same version (several environments) into
// report rows, in the usage order (image, then number). The usage rows are
// sorted (kiln.Fleet.Usage), so a version's rows are neighbours (rows
// given in another order are sorted first, on a copy); the report rows are
// allocated in one block.
func rows(us []*kiln.Usage, over func(u *kiln.Usage) int) []*kiln.ReportRow {
	byVersion := func(a, b *kiln.Usage) int {
		return cmp.Or(strings.Compare(a.Image, b.Image), cmp.Compare(a.Number, b.Number))
	}
	if !slices.IsSortedFunc(us, byVersion) {
		us = slices.Clone(us)
		slices.SortStableFunc(us, byVersion)
	}
	n := 0
	for i, u := range us {
		if i == 0 || !sameVersion(u, us[i-1]) {
			n++
		}
	}
	block := make([]kiln.ReportRow, n)
	out := make([]*kiln.ReportRow, 0, n)
	var r *kiln.ReportRow
	for i, u := range us {
		if i == 0 || !sameVersion(u, us[i-1]) {
			r = &block[len(out)]
			*r = kiln.ReportRow{Image: u.Image, Number: u.Number, Name: u.Ref().String(),
				BuiltAt: u.BuiltAt, Status: u.Status, Unknown: !u.Known}
			out = append(out, r)
		}
		r.Instances += u.Instances
		r.Lost += u.Lost
		if over != nil {
			r.OverAge += over(u)
		}
	}
	return out
}

func sameVersion(a, b *kiln.Usage) bool { return a.Number == b.Number && a.Image == b.Image }

// overBy returns how far past limit a version built at builtAt is at now,
// and whether it is past at all. Versions of unknown build time never are.
func overBy(builtAt, now time.Time, limit kiln.Age) (time.Duration, bool) {
	if builtAt.IsZero() || limit <= 0 {
		return 0, false
	}
	d := now.Sub(builtAt) - limit.Duration()
	return d, d > 0
}

// BuildReport turns usage rows (sorted by image, number, environment) into
// the fleet report for env ("" when the rows span every environment). An
// instance is over age when its environment has a policy and its version
// was built longer ago than the policy allows.
func BuildReport(us []*kiln.Usage, policies []*kiln.AgePolicy, now time.Time, env string) *kiln.Report {
	limit := map[string]kiln.Age{}
	for _, p := range policies {
		limit[p.Environment] = p.MaxAge
	}
	rep := &kiln.Report{Environment: env, Policies: policies}
	rep.Rows = rows(us, func(u *kiln.Usage) int {
		if _, over := overBy(u.BuiltAt, now, limit[u.Environment]); over {
			return u.Instances
		}
		return 0
	})
	for _, r := range rep.Rows {
		rep.Versions++
		rep.Instances += r.Instances
		rep.OverAge += r.OverAge
		if r.Unknown {
			rep.Unknown += r.Instances
		}
	}
	return rep
}

// BuildOverage lists, per version and environment, the instances whose
// version was built longer ago than maxAge, or than their environment's
// policy when maxAge is 0 (environments without one are left out).
func BuildOverage(us []*kiln.Usage, maxAge kiln.Age, policies []*kiln.AgePolicy, now time.Time, env string) *kiln.Overage {
	limit := map[string]kiln.Age{}
	for _, p := range policies {
		limit[p.Environment] = p.MaxAge
	}
	out := &kiln.Overage{Environment: env, MaxAge: maxAge, Rows: []*kiln.OverageRow{}}
	for _, u := range us {
		l := maxAge
		if l == 0 {
			l = limit[u.Environment]
		}
		d, over := overBy(u.BuiltAt, now, l)
		if !over {
			continue
		}
		out.Rows = append(out.Rows, &kiln.OverageRow{
			ReportRow: kiln.ReportRow{Image: u.Image, Number: u.Number, Name: u.Ref().String(), BuiltAt: u.BuiltAt,
				Status: u.Status, Instances: u.Instances, Lost: u.Lost, OverAge: u.Instances},
			Environment: u.Environment, MaxAge: l, Over: kiln.AgeOf(d),
		})
		out.Instances += u.Instances
	}
	seen := map[rowKey]bool{}
	for _, r := range out.Rows {
		seen[kiln.VersionRef{Image: r.Image, Number: r.Number}] = true
	}
	out.Versions = len(seen)
	return out
}

// BuildStale lists the versions in use that are older than their image's
// latest ready version. Instances on a version newer than it (candidates
// being tried) and images without a ready version are not stale.
func BuildStale(us []*kiln.Usage, env string) *kiln.Stale {
	return BuildStaleFor(us, env, nil)
}

package rollout

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
)

// Refresh plans the rollouts that bring every service's exposed, over-age,
// stale or tainted instances onto a good version: the newest ready version
// of the service's image (the environment's channel version when channels
// are kept), which must include the advisory's fix when one is named.
//
// It reads the registry, the inventory and the advisories through their
// interfaces; Fleet and Channels are optional.
type Refresh struct {
	Services   kiln.ServiceStore
	Registry   kiln.Registry
	Inventory  kiln.Inventory
	Advisories kiln.AdvisoryStore // needed for RefreshOptions.Advisory
	Fleet      kiln.Fleet         // for the environments' age policies; nil: only MaxAge
	Channels   kiln.ChannelStore  // nil: the latest ready version is the target
	// Exposure matches a package-level advisory (an OSV record, a DSA)
	// against the versions in use; fleet.Service does. nil: only
	// advisories with image-level fixed-in versions can be planned.
	Exposure Exposer
	Now      func() time.Time
}

// Exposer says which versions in use an advisory exposes and which
// version of each image first has its fix.
type Exposer interface {
	ExposedTo(ctx context.Context, id, env string) (*kiln.Exposure, error)
}

// RefreshOptions narrow the plan.
type RefreshOptions struct {
	Environment string
	// Advisory names an advisory whose fixed-in versions instances must reach.
	Advisory string
	// MaxAge overrides the environments' age policies (0: use them).
	MaxAge time.Duration
}

// RefreshItem is one planned rollout.
type RefreshItem struct {
	Service     string `json:"service"`
	Environment string `json:"environment"`
	// Versions are those the service's instances run now.
	Versions []string `json:"versions"`
	// To is the version to roll out; zero when there is none good enough.
	To        kiln.VersionRef `json:"to,omitzero"`
	Instances int             `json:"instances"`
	// Reasons say why: "exposed to DSA-5678-1", "over age (built 120d ago,
	// limit 90d)", "stale (appserver-6 is ready)", "tainted: web-…".
	Reasons []string `json:"reasons"`
	// Blocked says why no rollout can be planned.
	Blocked string `json:"blocked,omitempty"`
	// NeedsRun is set when what blocks the rollout is a version with the
	// fix that is not ready (or not built) yet: a pipeline run of the
	// image can make it (`kiln fleet refresh --apply` starts one).
	NeedsRun bool `json:"needs_run,omitempty"`
	// Result is filled in when the plan is applied.
	Result *kiln.Rollout `json:"result,omitempty"`
	// Wait, when the plan is applied by kiln serve's autopilot, says why
	// the rollout to To was held back (the service's update window, its
	// environment's rollout limit, a rollout in progress) and until when.
	Wait *Wait `json:"wait,omitempty"`
}

// RefreshPlan is what `kiln fleet refresh` shows and applies.
type RefreshPlan struct {
	Items []*RefreshItem `json:"items"`
	// Loose are instances outside services that need replacing, with the
	// commands that would do it: refresh replaces only services'.
	Loose []*LooseInstance `json:"loose,omitempty"`
	// Notes name instances outside services (they must be replaced by
	// whoever launched them) and anything that could not be decided.
	Notes []string `json:"notes,omitempty"`
}

// LooseInstance is a running instance that belongs to no service and has
// a reason to be replaced.
type LooseInstance struct {
	Name        string          `json:"name"`
	Environment string          `json:"environment"`
	Version     kiln.VersionRef `json:"version"`
	Reasons     []string        `json:"reasons"`
	// To is the version to replace it with; zero when none is good enough.
	To kiln.VersionRef `json:"to,omitzero"`
	// Command replaces it by hand: launch the new one, then destroy this.
	Command string `json:"command,omitempty"`
}

// fixes is what an advisory says about images: the first version of each
// with the fix, and which versions in use it exposes.
type fixes struct {
	id      string
	fixed   map[string]kiln.VersionRef
	exposed func(kiln.VersionRef) bool
}

// fixesOf reads the advisory: its image-level fixed-in statement, else its
// package entries matched through f.Exposure.
func (f *Refresh) fixesOf(ctx context.Context, id, env string) (*fixes, error) {
	if f.Advisories == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "advisories are not kept by this kiln setup")
	}
	adv, err := f.Advisories.FindAdvisory(ctx, id)
	if err != nil {
		return nil, err
	}
	fx := &fixes{id: id, fixed: map[string]kiln.VersionRef{}}
	if len(adv.FixedIn) > 0 {
		for _, r := range adv.FixedIn {
			fx.fixed[r.Image] = r
		}
		fx.exposed = func(r kiln.VersionRef) bool {
			f, ok := fx.fixed[r.Image]
			return ok && r.Number < f.Number
		}
		return fx, nil
	}
	if len(adv.Packages) == 0 || f.Exposure == nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--advisory", "advisory %s names no fixed-in image versions and no packages this kiln can match; refresh plans from image-level advisories, or package advisories with the fleet's manifests (see `kiln fleet exposed --advisory %s`)", id, id)
	}
	exp, err := f.Exposure.ExposedTo(ctx, id, env)
	if err != nil {
		return nil, err
	}
	for _, r := range exp.FixedIn {
		fx.fixed[r.Image] = r
	}
	hit := map[kiln.VersionRef]bool{}
	for _, row := range exp.Rows {
		hit[kiln.VersionRef{Image: row.Image, Number: row.Number}] = true
	}
	fx.exposed = func(r kiln.VersionRef) bool { return hit[r] }
	return fx, nil
}

// blocked says why target cannot be rolled out for the advisory, and
// whether a pipeline run of the image can make a version that can; ""
// when target has the fix.
func (fx *fixes) blocked(image string, target *kiln.Version) (string, bool) {
	f, ok := fx.fixed[image]
	switch {
	case !ok:
		return fmt.Sprintf("no version of %s has the fix of %s yet; a pipeline run with fresh packages can build it", image, fx.id), true
	case target == nil || target.Number < f.Number:
		return fmt.Sprintf("no ready version of %s has the fix of %s yet (fixed in %s); its pipeline run can make one ready", image, fx.id, f), true
	}
	return "", false
}

// Plan computes the plan.
func (f *Refresh) Plan(ctx context.Context, opts RefreshOptions) (*RefreshPlan, error) {
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	var fx *fixes
	if opts.Advisory != "" {
		var err error
		if fx, err = f.fixesOf(ctx, opts.Advisory, opts.Environment); err != nil {
			return nil, err
		}
	}
	policies := map[string]time.Duration{}
	if f.Fleet != nil && opts.MaxAge == 0 {
		ps, err := f.Fleet.AgePolicies(ctx)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			policies[p.Environment] = p.MaxAge.Duration()
		}
	}
	svcs, err := f.Services.ListServices(ctx)
	if err != nil {
		return nil, err
	}
	plan := &RefreshPlan{Items: []*RefreshItem{}}
	inService := map[string]bool{}
	versions := map[kiln.VersionRef]*kiln.Version{}
	findVersion := func(r kiln.VersionRef) *kiln.Version {
		if v, ok := versions[r]; ok {
			return v
		}
		v, err := f.Registry.FindVersion(ctx, r)
		if err != nil {
			v = nil
		}
		versions[r] = v
		return v
	}
	for _, s := range svcs {
		if opts.Environment != "" && s.Environment != opts.Environment {
			continue
		}
		ms, err := f.Services.ListMembers(ctx, s.Name)
		if err != nil {
			return nil, err
		}
		item := &RefreshItem{Service: s.Name, Environment: s.Environment, Reasons: []string{}}
		target, why, err := f.target(ctx, s)
		if err != nil {
			return nil, err
		}
		exposedHere := false
		maxAge := opts.MaxAge
		if maxAge == 0 {
			maxAge = policies[s.Environment]
		}
		seen := map[string]bool{}
		for _, m := range ms {
			inService[m.InstanceID] = true
			if m.State != kiln.MemberActive {
				continue
			}
			item.Instances++
			vs := m.Version.String()
			if !slices.Contains(item.Versions, vs) {
				item.Versions = append(item.Versions, vs)
			}
			var inst *kiln.Instance
			if f.Inventory != nil {
				inst, _ = f.Inventory.FindInstance(ctx, m.InstanceID)
			}
			reasons := f.reasons(m.Version, inst, fx, target, why, maxAge, now(), findVersion)
			exposedHere = exposedHere || (fx != nil && fx.exposed(m.Version))
			for _, r := range reasons {
				if !seen[r] {
					seen[r] = true
					item.Reasons = append(item.Reasons, r)
				}
			}
		}
		if len(item.Reasons) == 0 {
			continue
		}
		if exposedHere {
			item.Blocked, item.NeedsRun = fx.blocked(s.Image, target)
		}
		if target == nil && item.Blocked == "" {
			item.Blocked = fmt.Sprintf("%s has no ready version to roll out", s.Image)
		}
		if item.Blocked == "" {
			item.To = target.Ref()
		}
		plan.Items = append(plan.Items, item)
	}
	if f.Inventory != nil {
		insts, _, err := f.Inventory.ListInstances(ctx, kiln.InstanceFilter{Environment: opts.Environment,
			States: []kiln.InstanceState{kiln.InstanceRunning, kiln.InstanceDegraded, kiln.InstanceStarting}})
		if err != nil {
			return nil, err
		}
		var loose []string
		for _, in := range insts {
			if inService[in.ID] || in.Environment == "test" {
				continue
			}
			loose = append(loose, in.Name+" ("+in.Version.String()+")")
			if li, err := f.loose(ctx, in, fx, opts.MaxAge, policies, now(), findVersion); err != nil {
				return nil, err
			} else if li != nil {
				plan.Loose = append(plan.Loose, li)
			}
		}
		if len(loose) > 0 {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%d running instance(s) belong to no service and are not planned: %s", len(loose), strings.Join(firstN(loose, 10), ", ")))
		}
	}
	return plan, nil
}

// reasons says why an instance on ref (inst, when known) should be
// replaced: exposed to the advisory, over age, stale, tainted.
func (f *Refresh) reasons(ref kiln.VersionRef, inst *kiln.Instance, fx *fixes, target *kiln.Version, why string,
	maxAge time.Duration, now time.Time, findVersion func(kiln.VersionRef) *kiln.Version) []string {
	var reasons []string
	vs := ref.String()
	if fx != nil && fx.exposed(ref) {
		if fixed, ok := fx.fixed[ref.Image]; ok {
			reasons = append(reasons, fmt.Sprintf("%s exposed to %s (fixed in %s)", vs, fx.id, fixed))
		} else {
			reasons = append(reasons, fmt.Sprintf("%s exposed to %s (no fix built yet)", vs, fx.id))
		}
	}
	if v := findVersion(ref); v != nil && maxAge > 0 {
		if age := now.Sub(v.CreatedAt); age > maxAge {
			reasons = append(reasons, fmt.Sprintf("%s over age (built %s ago, limit %s)", vs, kiln.FormatAge(age), kiln.FormatAge(maxAge)))
		}
	}
	if v := findVersion(ref); v.Revoked() {
		reasons = append(reasons, revokedReason(vs, v))
	}
	if target != nil && ref.Image == target.Image && ref.Number < target.Number {
		reasons = append(reasons, fmt.Sprintf("%s stale (%s is %s)", vs, target.Name, why))
	}
	if inst != nil && inst.Tainted {
		reasons = append(reasons, "tainted by break-glass access: "+inst.Name)
	}
	return reasons
}

// loose plans an instance outside every service: nil when nothing says
// it should be replaced, else its reasons, the version to replace it with
// (the one a service of its image in its environment would get) and the
// commands that would.
func (f *Refresh) loose(ctx context.Context, in *kiln.Instance, fx *fixes, maxAge time.Duration, policies map[string]time.Duration,
	now time.Time, findVersion func(kiln.VersionRef) *kiln.Version) (*LooseInstance, error) {
	pseudo := &kiln.Service{Image: in.Version.Image, Environment: in.Environment}
	target, why, err := f.target(ctx, pseudo)
	if err != nil {
		return nil, err
	}
	if maxAge == 0 {
		maxAge = policies[in.Environment]
	}
	reasons := f.reasons(in.Version, in, fx, target, why, maxAge, now, findVersion)
	if len(reasons) == 0 {
		return nil, nil
	}
	li := &LooseInstance{Name: in.Name, Environment: in.Environment, Version: in.Version, Reasons: reasons}
	if target == nil || (target.Number == in.Version.Number && !in.Tainted) {
		return li, nil
	}
	if fx != nil && fx.exposed(in.Version) {
		if b, _ := fx.blocked(in.Version.Image, target); b != "" {
			return li, nil
		}
	}
	li.To = target.Ref()
	li.Command = fmt.Sprintf("kiln instance launch %s --env %s --name %s && kiln instance destroy %s", target.Name, in.Environment, in.Name+"-"+target.Name, in.Name)
	return li, nil
}

// target is the version a service should run: its environment's channel
// version when channels are kept and one is set, else the newest ready one.
func (f *Refresh) target(ctx context.Context, s *kiln.Service) (*kiln.Version, string, error) {
	return Target(ctx, f.Registry, f.Channels, s)
}

// Target is the version a service is refreshed or rolled out to by
// default: the channel version of its environment, else the newest ready
// version of its image; nil when there is none. why says which.
func Target(ctx context.Context, reg kiln.Registry, ch kiln.ChannelStore, s *kiln.Service) (*kiln.Version, string, error) {
	if ch != nil {
		c, err := ch.FindChannel(ctx, s.Image, s.Environment)
		if err == nil {
			v, err := reg.FindVersion(ctx, c.Version)
			return v, "the " + s.Environment + " channel version", err
		}
		if kiln.ErrorCode(err) != kiln.ENOTFOUND {
			return nil, "", err
		}
	}
	v, err := reg.LatestVersion(ctx, s.Image, kiln.StatusReady)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return nil, "", nil
	}
	return v, "the latest ready version", err
}

// revokedReason says why an instance on revoked version v (vs) must be
// replaced, naming the revoked ancestor it was revoked through.
func revokedReason(vs string, v *kiln.Version) string {
	switch r := v.Revocation; {
	case r == nil:
		return vs + " revoked"
	case r.Through != nil:
		return fmt.Sprintf("%s revoked through %s (%s)", vs, r.Through, r.Reason)
	default:
		return fmt.Sprintf("%s revoked (%s)", vs, r.Reason)
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("… %d more", len(s)-n))
	}
	return s
}

// Apply runs the plan's rollouts one after the other with roll (a
// RolloutStarter's StartRollout followed to the end: the local Host, or a
// kiln server) and records each result; it stops at the first rollout that
// ends in failure (rolled back or failed), since the next ones would
// likely fail the same way.
//
// hold, when set, is asked just before each rollout whether it must wait
// (kiln serve's autopilot: the service's Policy); a held item gets its
// Wait and is not rolled out, and the next items are still asked, so a
// rollout limit counts the rollouts this plan started. A person's refresh
// passes nil.
func (f *Refresh) Apply(ctx context.Context, roll func(context.Context, kiln.RolloutRequest) (*kiln.Rollout, error),
	hold func(context.Context, *RefreshItem) (*Wait, error), plan *RefreshPlan) error {
	for _, it := range plan.Items {
		if it.To.IsZero() {
			continue
		}
		if hold != nil {
			w, err := hold(ctx, it)
			if err != nil {
				return fmt.Errorf("refresh %s: rollout policy: %w", it.Service, err)
			}
			if it.Wait = w; w != nil {
				continue
			}
		}
		r, err := roll(ctx, kiln.RolloutRequest{Service: it.Service, To: it.To})
		it.Result = r
		if err != nil {
			return fmt.Errorf("refresh %s: %w", it.Service, err)
		}
		if r.State != kiln.RolloutSucceeded {
			return kiln.Errorf(kiln.EUNAVAILABLE, "refresh stopped: the rollout of %s to %s %s (%s)", it.Service, it.To, r.State, r.Reason)
		}
	}
	return nil
}

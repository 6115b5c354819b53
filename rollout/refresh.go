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
	Now        func() time.Time
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
	// Result is filled in when the plan is applied.
	Result *kiln.Rollout `json:"result,omitempty"`
}

// RefreshPlan is what `kiln fleet refresh` shows and applies.
type RefreshPlan struct {
	Items []*RefreshItem `json:"items"`
	// Notes name instances outside services (they must be replaced by
	// whoever launched them) and anything that could not be decided.
	Notes []string `json:"notes,omitempty"`
}

// Plan computes the plan.
func (f *Refresh) Plan(ctx context.Context, opts RefreshOptions) (*RefreshPlan, error) {
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	var fixed map[string]kiln.VersionRef
	if opts.Advisory != "" {
		if f.Advisories == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "advisories are not kept by this kiln setup")
		}
		adv, err := f.Advisories.FindAdvisory(ctx, opts.Advisory)
		if err != nil {
			return nil, err
		}
		if len(adv.FixedIn) == 0 {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "--advisory", "advisory %s names no fixed-in image versions; refresh plans only from image-level advisories (see `kiln fleet exposure --advisory %s` for package findings)", opts.Advisory, opts.Advisory)
		}
		fixed = map[string]kiln.VersionRef{}
		for _, r := range adv.FixedIn {
			fixed[r.Image] = r
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
		if fx, ok := fixed[s.Image]; ok && (target == nil || target.Number < fx.Number) {
			item.Blocked = fmt.Sprintf("no ready version of %s has the fix of %s yet (fixed in %s); build and promote one first", s.Image, opts.Advisory, fx)
		}
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
			var reasons []string
			if fx, ok := fixed[m.Version.Image]; ok && m.Version.Number < fx.Number {
				reasons = append(reasons, fmt.Sprintf("%s exposed to %s (fixed in %s)", vs, opts.Advisory, fx))
			}
			if v := findVersion(m.Version); v != nil && maxAge > 0 {
				if age := now().Sub(v.CreatedAt); age > maxAge {
					reasons = append(reasons, fmt.Sprintf("%s over age (built %s ago, limit %s)", vs, kiln.FormatAge(age), kiln.FormatAge(maxAge)))
				}
			}
			if v := findVersion(m.Version); v.Revoked() {
				reasons = append(reasons, revokedReason(vs, v))
			}
			if target != nil && m.Version.Number < target.Number {
				reasons = append(reasons, fmt.Sprintf("%s stale (%s is %s)", vs, target.Name, why))
			}
			if f.Inventory != nil {
				if inst, err := f.Inventory.FindInstance(ctx, m.InstanceID); err == nil && inst.Tainted {
					reasons = append(reasons, "tainted by break-glass access: "+inst.Name)
				}
			}
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
			if !inService[in.ID] && in.Environment != "test" {
				loose = append(loose, in.Name+" ("+in.Version.String()+")")
			}
		}
		if len(loose) > 0 {
			plan.Notes = append(plan.Notes, fmt.Sprintf("%d running instance(s) belong to no service and are not planned: %s", len(loose), strings.Join(firstN(loose, 10), ", ")))
		}
	}
	return plan, nil
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
func (f *Refresh) Apply(ctx context.Context, roll func(context.Context, kiln.RolloutRequest) (*kiln.Rollout, error), plan *RefreshPlan) error {
	for _, it := range plan.Items {
		if it.To.IsZero() {
			continue
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

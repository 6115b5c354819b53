package autopilot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/rollout"
)

// Actor is who the automatic refresh acts as: in the audit log, on the
// runs it queues and the rollouts it starts.
const Actor = "autopilot"

// Auto is kiln serve's automatic refresh. Check reads every estate's
// environments with refresh { auto = true }, finds the advisories at or
// above each one's min_severity that expose its instances, and refreshes
// the environment for each, as `kiln fleet refresh --advisory ID --env
// ENV --apply` would: the image's pipeline run first when no ready version
// has the fix, then the services' rollouts. Every decision is in the
// audit log under the actor "autopilot".
type Auto struct {
	// Estates are the estates whose environment blocks count (kiln serve:
	// those runs were queued from, and the registered ones).
	Estates    func(ctx context.Context) []pipeline.Estate
	LoadEstate func(dir string, vars map[string]string) (*definition.Estate, error)
	Fleet      kiln.Fleet
	Registry   kiln.Registry
	// Services, when set, lets a check clear the pending rollouts it
	// recorded that no exposure asks for any more.
	Services   kiln.ServiceStore
	Advisories kiln.AdvisoryStore
	Audit      kiln.AuditLog
	// Refresher returns the refresher for an environment of the estate
	// (its StartRuns reading that estate).
	Refresher func(est pipeline.Estate) *Refresher
	// Paused reports whether an environment's automatic refresh is
	// stopped (nil: never).
	Paused func(ctx context.Context, env string) (bool, error)
	Logger *slog.Logger
	// RetryAfter is how long an advisory that was refreshed for an
	// environment (successfully or not) is left alone there (default 6h):
	// a refresh that could not make the fix is not retried every tick. A
	// refresh whose rollouts a service's policy held back is retried at
	// the first check after the earliest wait ends (the window opens, the
	// limit frees) instead.
	RetryAfter time.Duration
	// DefaultRelease is the Debian release a version that names none (an
	// origin tarball's) is scanned for, as `kiln fleet exposed` matches it
	// (fleet.Service.DefaultRelease); empty: such versions are not scanned.
	DefaultRelease string
	Clock          kiln.Clock

	mu sync.Mutex
	// next is, per environment and advisory, when it is refreshed again
	// at the earliest; held has those whose rollouts a policy held back.
	next, held map[string]time.Time
}

func (a *Auto) now() time.Time {
	if a.Clock != nil {
		return a.Clock()
	}
	return time.Now()
}

func (a *Auto) log() *slog.Logger {
	if a.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return a.Logger
}

// Exposure is one advisory exposing instances of an environment.
type Exposure struct {
	Environment string
	Advisory    string
	Severity    string
	// Versions are the versions in use it affects.
	Versions  []kiln.VersionRef
	Instances int
}

// Check runs one pass; why says what started it ("advisory source
// debian-osv synced", "tick"). It returns the exposures it acted on.
func (a *Auto) Check(ctx context.Context, why string) ([]*Exposure, error) {
	a.mu.Lock() // one pass at a time: a sync and a tick do not refresh twice
	defer a.mu.Unlock()
	if a.next == nil {
		a.next, a.held = map[string]time.Time{}, map[string]time.Time{}
	}
	ctx = kiln.WithActor(ctx, Actor)
	var acted []*Exposure
	seen := map[string]bool{}
	for _, e := range a.Estates(ctx) {
		est, err := a.LoadEstate(e.Dir, e.Vars)
		if err != nil {
			a.log().Warn("autopilot: cannot read estate", "estate", e.Dir, "err", err)
			continue
		}
		for _, env := range est.AutoRefresh() {
			if seen[env.Name] {
				continue // declared in two estates: the first one read decides
			}
			seen[env.Name] = true
			if a.Paused != nil {
				if p, err := a.Paused(ctx, env.Name); err != nil || p {
					continue
				}
			}
			exps, err := a.Exposures(ctx, env.Name, env.Refresh)
			if err != nil {
				return acted, fmt.Errorf("autopilot: environment %s: %w", env.Name, err)
			}
			a.dropMoot(ctx, env.Name, exps)
			for _, x := range exps {
				key := x.Environment + "|" + x.Advisory
				if a.now().Before(a.next[key]) {
					continue
				}
				acted = append(acted, x)
				a.next[key] = a.now().Add(a.retryAfter())
				delete(a.held, key)
				if until, held := a.refresh(ctx, e, x, env, why); held {
					// Not dropped: retried once the first wait ends.
					a.next[key], a.held[key] = until, until
				}
			}
		}
	}
	return acted, nil
}

// Wake is when the first rollout a policy held back may start (its
// window opens, its limit frees), for kiln serve to check then rather
// than at its next tick; zero when none waits for a time to come.
func (a *Auto) Wake() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	var first time.Time
	for key, at := range a.held {
		if !at.After(now) {
			delete(a.held, key) // its check has come (or it was not exposed any more)
			continue
		}
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	return first
}

// dropMoot clears the pending rollouts the autopilot recorded in env
// that no exposure asks for any more (the advisory was withdrawn, the
// instances were replaced otherwise): nothing would start them, and
// `kiln service show` would say they wait.
func (a *Auto) dropMoot(ctx context.Context, env string, exps []*Exposure) {
	if a.Services == nil {
		return
	}
	svcs, err := a.Services.ListServices(ctx)
	if err != nil {
		a.log().Warn("autopilot: list services", "err", err)
		return
	}
	for _, s := range svcs {
		if s.Environment != env || s.Pending == nil || s.Pending.By != Actor {
			continue
		}
		if slices.ContainsFunc(exps, func(x *Exposure) bool { return s.Pending.Why == refreshWhy(x.Advisory) }) {
			continue
		}
		if err := a.Services.SetServicePending(ctx, s.Name, nil); err != nil {
			a.log().Warn("autopilot: clear pending rollout", "service", s.Name, "err", err)
			continue
		}
		a.log().Info("autopilot: pending rollout dropped: no advisory asks for it any more", "service", s.Name, "to", s.Pending.To.String(), "why", s.Pending.Why)
	}
}

func (a *Auto) retryAfter() time.Duration {
	if a.RetryAfter > 0 {
		return a.RetryAfter
	}
	return 6 * time.Hour
}

// refresh refreshes env for x and audits it; held reports whether a
// service's policy held a rollout back, and until is when the first of
// those waits ends (the zero time: at the next check).
func (a *Auto) refresh(ctx context.Context, e pipeline.Estate, x *Exposure, env *definition.EnvironmentPolicy, why string) (until time.Time, held bool) {
	target := "environment " + x.Environment
	detail := fmt.Sprintf("%s (%s, at or above %s) exposes %d instance(s) on %s; refresh started (%s; policy %s:%d)",
		x.Advisory, x.Severity, env.Refresh.MinSeverity, x.Instances, joinRefs(x.Versions), why, env.File, env.Refresh.Range.Start.Line)
	a.audit(ctx, "autopilot.refresh", target, detail)
	a.log().Info("autopilot: refreshing", "environment", x.Environment, "advisory", x.Advisory, "instances", x.Instances)
	r := a.Refresher(e)
	out, err := r.Refresh(ctx, rollout.RefreshOptions{Advisory: x.Advisory, Environment: x.Environment}, true)
	result := Summary(out)
	if err != nil {
		result = "stopped: " + kiln.ErrorMessage(err) + "; " + result
		a.log().Warn("autopilot: refresh stopped", "environment", x.Environment, "advisory", x.Advisory, "err", err)
	}
	a.audit(ctx, "autopilot.refresh.done", target, x.Advisory+": "+result)
	if out == nil || out.RefreshPlan == nil {
		return time.Time{}, false
	}
	for _, it := range out.Items {
		if it.Wait != nil && (!held || it.Wait.Until.Before(until)) {
			until, held = it.Wait.Until, true
		}
	}
	return until, held
}

func (a *Auto) audit(ctx context.Context, action, target, detail string) {
	if a.Audit == nil {
		return
	}
	if err := a.Audit.AppendAudit(ctx, &kiln.AuditEntry{Action: action, Target: target, Detail: detail, Actor: Actor, Source: "kiln serve"}); err != nil {
		a.log().Error("autopilot: audit", "action", action, "err", err)
	}
}

// Summary is one line on what a refresh did: the runs, each service's
// result or why it is blocked.
func Summary(out *Outcome) string {
	if out == nil || out.RefreshPlan == nil {
		return "nothing planned"
	}
	var parts []string
	for _, run := range out.Runs {
		parts = append(parts, fmt.Sprintf("run %d %s", run.ID, RunSummary(run)))
	}
	for _, it := range out.Items {
		switch {
		case it.Result != nil:
			parts = append(parts, fmt.Sprintf("%s → %s %s", it.Service, it.To, it.Result.State))
		case it.Wait != nil:
			parts = append(parts, fmt.Sprintf("%s → %s held back: %s", it.Service, it.To, it.Wait.Reason))
		case it.To.IsZero():
			parts = append(parts, fmt.Sprintf("%s blocked: %s", it.Service, it.Blocked))
		default:
			parts = append(parts, fmt.Sprintf("%s → %s not run", it.Service, it.To))
		}
	}
	for _, l := range out.Loose {
		parts = append(parts, fmt.Sprintf("%s outside services: %s", l.Name, orNone(l.Command)))
	}
	if len(parts) == 0 {
		return "nothing to refresh"
	}
	return strings.Join(parts, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "no good version yet"
	}
	return s
}

func joinRefs(rs []kiln.VersionRef) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.String())
	}
	return strings.Join(out, ", ")
}

// Exposures lists the advisories at or above the policy's severity, in the
// finding states it includes, that affect versions running in env, worst
// first. Each version in use is scanned as the pipeline's scan stage
// scans it, for the Debian release it was built from.
func (a *Auto) Exposures(ctx context.Context, env string, pol definition.RefreshPolicy) ([]*Exposure, error) {
	us, err := a.Fleet.Usage(ctx, kiln.UsageFilter{Environment: env})
	if err != nil {
		return nil, err
	}
	byID := map[string]*Exposure{}
	for _, u := range us {
		if !u.Known || u.Instances-u.Lost <= 0 {
			continue
		}
		v, err := a.Registry.FindVersion(ctx, kiln.VersionRef{Image: u.Image, Number: u.Number})
		if err != nil {
			return nil, err
		}
		rel := a.release(ctx, v)
		if rel == "" {
			rel = a.DefaultRelease
		}
		if rel == "" {
			a.log().Warn("autopilot: version names no Debian release; not scanned", "version", v.Name)
			continue
		}
		res, err := pipeline.Scan(ctx, a.Advisories, v, rel, definition.ScanPolicy{MinSeverity: pol.MinSeverity, Include: pol.Include})
		if err != nil {
			return nil, err
		}
		for _, f := range res.Affected {
			x := byID[f.Advisory]
			if x == nil {
				x = &Exposure{Environment: env, Advisory: f.Advisory, Severity: f.Severity}
				byID[f.Advisory] = x
			}
			if !slices.Contains(x.Versions, v.Ref()) {
				x.Versions = append(x.Versions, v.Ref())
				x.Instances += u.Instances - u.Lost
			}
		}
	}
	out := make([]*Exposure, 0, len(byID))
	for _, x := range byID {
		out = append(out, x)
	}
	slices.SortFunc(out, func(p, q *Exposure) int {
		if c := advisory.SeverityRank(q.Severity) - advisory.SeverityRank(p.Severity); c != 0 {
			return c
		}
		return strings.Compare(p.Advisory, q.Advisory)
	})
	return out, nil
}

// release is the Debian suite a version was built from: its Debian
// origin's, else its base's or parent's (the chain is bounded), else
// what the last one's base-files says.
func (a *Auto) release(ctx context.Context, v *kiln.Version) string {
	for range 16 {
		var next *kiln.VersionRef
		for _, s := range v.Provenance.Sources {
			if s.Kind != kiln.SourceOrigin {
				continue
			}
			if suite, _, ok := strings.Cut(s.Ref, "@"); ok && suite != "" && !strings.ContainsAny(suite, "/.") {
				return suite
			}
			if r, err := kiln.ParseVersionRef("origin", s.Ref); err == nil {
				next = &r
			}
		}
		if next == nil {
			next = v.Provenance.Base
		}
		if next == nil {
			next = v.Provenance.Parent
		}
		if next == nil {
			return advisory.ReleaseOfPackages(v.Provenance.Packages)
		}
		nv, err := a.Registry.FindVersion(ctx, *next)
		if err != nil {
			return ""
		}
		v = nv
	}
	return ""
}

// FollowRollouts is a Refresher.Roll on a RolloutStarter that runs
// rollouts in the background (kiln serve's host): it starts the rollout
// and reads it every interval until it has ended, writing its progress
// lines to progress.
func FollowRollouts(h kiln.RolloutStarter, every time.Duration, progress io.Writer) func(context.Context, kiln.RolloutRequest) (*kiln.Rollout, error) {
	return func(ctx context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
		r, err := h.StartRollout(ctx, req)
		if err != nil || r == nil || r.State.Done() {
			return r, err
		}
		after := 0
		for {
			p, err := h.RolloutProgress(ctx, r.ID, after)
			if err != nil {
				return r, err
			}
			for _, l := range p.Lines {
				if progress != nil {
					fmt.Fprintln(progress, l)
				}
			}
			after = p.Next
			if p.Rollout != nil {
				r = p.Rollout
			}
			if r.State.Done() {
				return r, nil
			}
			if !p.Running {
				return r, kiln.Errorf(kiln.EUNAVAILABLE, "rollout %d of %s stopped (%s) before its end; resume it with `kiln rollout %s --resume`", r.ID, r.Service, r.State, r.Service)
			}
			select {
			case <-ctx.Done():
				return r, ctx.Err()
			case <-time.After(every):
			}
		}
	}
}

// LogWriter writes each line it is given to logger at Info, as msg with
// the line as "line": the progress of kiln serve's refreshes goes to its
// log.
type LogWriter struct {
	Logger *slog.Logger
	Msg    string
}

func (w LogWriter) Write(p []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if strings.TrimSpace(l) != "" {
			w.Logger.Info(w.Msg, "line", strings.TrimSpace(l))
		}
	}
	return len(p), nil
}

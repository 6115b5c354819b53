package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/launch"
)

// Engine runs rollouts. It is safe to run one rollout per service at a
// time (the store refuses a second); several services may roll out at once.
// A rollout is run under a lease in the store (see RolloutStore): while
// one process runs it, another one's Resume is refused, and a process that
// lost the lease stops at its next step.
type Engine struct {
	Services kiln.ServiceStore
	Rollouts RolloutStore
	// Timeline, when set, keeps samples of each running rollout for the
	// dashboard's timeline; nil samples nothing.
	Timeline kiln.RolloutTimeline
	Registry kiln.Registry
	// Launcher launches (and destroys) the instances, each after checking
	// the version's signed provenance.
	Launcher *launch.Launcher
	Logger   *slog.Logger
	// Progress receives one line per rollout event; nil prints nothing.
	Progress io.Writer
	// BootTimeout bounds each instance's boot; 0 is the platform's default.
	BootTimeout time.Duration
	// HealthTimeout bounds the wait for a new instance's first healthy check.
	HealthTimeout time.Duration
	// DrainTimeout bounds the wait for the front end to stop sending to an
	// instance being removed.
	DrainTimeout time.Duration
	// Owner names this process in the lease of each rollout it runs, so
	// another process refused the rollout is told who runs it. Empty: the
	// program, pid and host of this process with a random run id.
	Owner string
	// Config returns the launch configuration of a service's environment
	// (its estate's config block); nil (or a nil result) launches without
	// one. When it gives one, an instance counts as running the target
	// only with the target version and that configuration's digest, so a
	// rollout to the same version with a changed configuration replaces
	// every instance, in batches, like any other.
	Config func(ctx context.Context, svc *kiln.Service) (*launch.Config, error)
	// LeaseTime is how long a rollout's lease lasts unrenewed (30 s when
	// 0): how long a rollout whose process died waits to be resumed. The
	// lease is renewed every sixth of it while the rollout runs.
	LeaseTime time.Duration
	// SampleEvery is how often a running rollout is sampled for its
	// Timeline (1 s when 0).
	SampleEvery time.Duration
	// Gate evaluates a service's metric gate (its policy's) after each
	// batch; nil evaluates it with a PrometheusGate.
	Gate Gate
	// FrontEndRunning, when set, tells whether the service's front end
	// runs: Begin refuses a rollout without one (its first batch could
	// never enter it). Host sets it.
	FrontEndRunning func(ctx context.Context, service string) (bool, error)
}

// RolloutStore keeps rollouts and the leases they run under: a store that
// cannot lease cannot run rollouts (two processes could run one at once).
type RolloutStore interface {
	kiln.RolloutStore
	kiln.RolloutLeaser
	kiln.LaunchConfigStore
}

// Errors a rollout refuses with.
var (
	// ErrNoFrontEnd: the service's front end is not reporting, so removing
	// an instance could fail requests.
	ErrNoFrontEnd = errors.New("front end not running")
)

// Options change one rollout.
type Options struct {
	// AllowUnready rolls out a version that is tested but not ready.
	AllowUnready bool
}

// Start begins a rollout of service to version to and runs it to the end:
// succeeded, rolled back, or failed. If ctx is cancelled the rollout stays
// recorded as running (or rolling back) and Resume continues it.
func (e *Engine) Start(ctx context.Context, service string, to kiln.VersionRef, opts Options) (*kiln.Rollout, error) {
	r, err := e.Begin(ctx, service, to, opts)
	if err != nil {
		return nil, err
	}
	return e.Continue(ctx, r)
}

// Begin checks a rollout of service to version to and records it, without
// running it: Continue runs it (kiln serve does so in the background).
func (e *Engine) Begin(ctx context.Context, service string, to kiln.VersionRef, opts Options) (*kiln.Rollout, error) {
	svc, err := e.Services.FindService(ctx, service)
	if err != nil {
		return nil, err
	}
	if to.Image != svc.Image {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "to", "service %s runs image %s; %s is of image %s", service, svc.Image, to, to.Image)
	}
	if err := e.refuseRevokedTarget(ctx, svc, to); err != nil {
		return nil, err
	}
	if e.Launcher == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln runs no platform to launch instances of %s on", to)
	}
	if _, err := e.Launcher.Check(ctx, to, launch.Ready(opts.AllowUnready)); err != nil {
		return nil, err
	}
	if e.FrontEndRunning != nil {
		running, err := e.FrontEndRunning(ctx, service)
		if err != nil {
			return nil, err
		}
		if !running {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "the front end of %s is not running (%v), so no instance could enter it; start it with `kiln service start %s` and see its log under the data directory's services/ if it does not stay up",
				service, ErrNoFrontEnd, service)
		}
	}
	r := &kiln.Rollout{Service: service, From: svc.Version, To: to}
	// The configuration rolled out is kept with the rollout, and the one
	// the replaced instances run is named, so that a rollback (of this
	// rollout, or of the next one) can launch either again.
	cfg, res, err := e.resolveConfig(ctx, svc)
	if err != nil {
		return nil, err
	}
	if res != nil {
		r.ToConfig = res.Digest
		r.Configs = append(r.Configs, cfg.Record(res))
	}
	if r.FromConfig, err = e.membersConfig(ctx, svc); err != nil {
		return nil, err
	}
	if err := e.Rollouts.CreateRollout(ctx, r); err != nil {
		return nil, err
	}
	// Held from the start, so no other process resumes it before
	// Continue runs it (Continue renews it).
	if err := e.acquire(ctx, r); err != nil {
		return nil, fmt.Errorf("rollout %d of %s recorded, but: %w", r.ID, service, err)
	}
	e.say("==> rollout %d: %s from %s to %s (%d replicas, batches of %d, max surge %d, min healthy %d, bake %s)",
		r.ID, service, orNone(r.From), to, svc.Replicas, svc.Batch(), svc.MaxSurge, svc.MinHealthy(), svc.BakeTime)
	if r.FromConfig != r.ToConfig {
		e.say("    configuration %s → %s", orNoConfig(r.FromConfig), orNoConfig(r.ToConfig))
	}
	return r, nil
}

// Continue runs a recorded, unfinished rollout to its end, in the
// direction it is going; what an interrupted process left (instances whose
// launch was cut short, removals) is finished first.
func (e *Engine) Continue(ctx context.Context, r *kiln.Rollout) (*kiln.Rollout, error) {
	svc, err := e.Services.FindService(ctx, r.Service)
	if err != nil {
		return r, err
	}
	return e.run(ctx, svc, r)
}

// Resume continues the service's interrupted rollout: instances whose
// launch was cut short are destroyed, removals are finished, and the
// rollout goes on in the direction it was going (forward, or back). It is
// refused (ECONFLICT, naming the process) while another process holds the
// rollout's lease.
func (e *Engine) Resume(ctx context.Context, service string) (*kiln.Rollout, error) {
	svc, err := e.Services.FindService(ctx, service)
	if err != nil {
		return nil, err
	}
	r, err := e.Rollouts.ActiveRollout(ctx, service)
	if err != nil {
		return nil, err
	}
	e.say("==> resuming rollout %d of %s (%s, %d batches done)", r.ID, service, r.State, r.Batch)
	return e.run(ctx, svc, r)
}

func (e *Engine) gate() Gate {
	if e.Gate == nil {
		return &PrometheusGate{}
	}
	return e.Gate
}

func orNoConfig(d string) string {
	if d == "" {
		return "(none)"
	}
	return short(d)
}

// short is a digest's first 12 hex digits.
func short(d string) string {
	const n = len("sha256:") + 12
	if len(d) > n {
		return d[:n]
	}
	return d
}

func orNone(r kiln.VersionRef) string {
	if r.IsZero() {
		return "(nothing)"
	}
	return r.String()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Logger
}

func (e *Engine) say(format string, args ...any) {
	if e.Progress != nil {
		fmt.Fprintf(e.Progress, format+"\n", args...)
	}
}

func (e *Engine) run(ctx context.Context, svc *kiln.Service, r *kiln.Rollout) (*kiln.Rollout, error) {
	ctx, ls, err := e.hold(ctx, r)
	if err != nil {
		return r, err
	}
	defer ls.release(ctx, e.log())
	ctx, tl := e.startTimeline(ctx, r)
	defer tl.finish(ctx)
	if err := e.recover(ctx, svc); err != nil {
		return r, ls.or(err)
	}
	if r.State == kiln.RolloutRunning {
		err := e.converge(ctx, svc, r, r.To, true)
		if err == nil {
			if err := ls.confirm(ctx); err != nil {
				return r, err
			}
			if err := e.Services.SetServiceVersion(ctx, svc.Name, r.To); err != nil {
				return r, ls.or(err)
			}
			r.State, r.Reason = kiln.RolloutSucceeded, fmt.Sprintf("%d instances run %s", svc.Replicas, r.To)
			e.say("==> rollout %d succeeded: %s", r.ID, r.Reason)
			return r, e.Rollouts.UpdateRollout(context.WithoutCancel(ctx), r)
		}
		if lost := ls.lostErr(); lost != nil {
			return r, lost
		}
		if ctx.Err() != nil {
			return r, fmt.Errorf("rollout %d interrupted (resume with `kiln rollout %s --resume`): %w", r.ID, svc.Name, ctx.Err())
		}
		if err := ls.confirm(ctx); err != nil {
			return r, err
		}
		// A rollback never lands on a revoked version: the rollout fails
		// where it stands, saying what to roll out instead.
		if refusal, rerr := e.revokedRollback(ctx, svc, r); rerr != nil {
			return r, ls.or(rerr)
		} else if refusal != "" {
			r.State, r.Reason = kiln.RolloutFailed, kiln.ErrorMessage(err)+"; "+refusal
			e.say("==> rollout %d failed: %s", r.ID, r.Reason)
			if uerr := e.Rollouts.UpdateRollout(context.WithoutCancel(ctx), r); uerr != nil {
				return r, uerr
			}
			return r, kiln.Errorf(kiln.ECONFLICT, "rollout %d of %s failed and was not rolled back: %s", r.ID, svc.Name, r.Reason)
		}
		r.State, r.Reason, r.Batch = kiln.RolloutRollingBack, kiln.ErrorMessage(err), 0
		e.say("==> rollout %d: rolling back: %s", r.ID, r.Reason)
		if err := e.Rollouts.UpdateRollout(ctx, r); err != nil {
			return r, ls.or(err)
		}
		tl.mark()
	}
	// Rolling back: the previous version in again, new instances out.
	if r.From.IsZero() {
		err = e.removeAll(ctx, svc, r, r.To)
	} else {
		err = e.converge(ctx, svc, r, r.From, false)
	}
	if err != nil {
		if lost := ls.lostErr(); lost != nil {
			return r, lost
		}
		if ctx.Err() != nil {
			return r, fmt.Errorf("rollback of rollout %d interrupted (resume with `kiln rollout %s --resume`): %w", r.ID, svc.Name, ctx.Err())
		}
		if lerr := ls.confirm(ctx); lerr != nil {
			return r, lerr
		}
		r.State, r.Reason = kiln.RolloutFailed, r.Reason+"; rollback failed: "+kiln.ErrorMessage(err)
		e.say("==> rollout %d failed: %s", r.ID, r.Reason)
		if uerr := e.Rollouts.UpdateRollout(context.WithoutCancel(ctx), r); uerr != nil {
			return r, errors.Join(err, uerr)
		}
		return r, kiln.Errorf(kiln.EUNAVAILABLE, "rollout %d of %s failed and could not be rolled back: %s; see `kiln service show %s`", r.ID, svc.Name, kiln.ErrorMessage(err), svc.Name)
	}
	if err := ls.confirm(ctx); err != nil {
		return r, err
	}
	r.State = kiln.RolloutRolledBack
	e.say("==> rollout %d rolled back to %s", r.ID, orNone(r.From))
	return r, e.Rollouts.UpdateRollout(context.WithoutCancel(ctx), r)
}

// recover finishes what an interrupted process left: members still
// launching are destroyed (they never served), draining ones are removed.
func (e *Engine) recover(ctx context.Context, svc *kiln.Service) error {
	ms, err := e.Services.ListMembers(ctx, svc.Name)
	if err != nil {
		return err
	}
	var drain []*kiln.Member
	for _, m := range ms {
		switch m.State {
		case kiln.MemberLaunching:
			e.say("    %s: launch was interrupted; destroying it", m.InstanceID)
			if err := e.destroy(ctx, svc, m, "rollout: launch interrupted"); err != nil {
				return err
			}
		case kiln.MemberDraining:
			drain = append(drain, m)
		}
	}
	if len(drain) > 0 {
		return e.remove(ctx, svc, drain, "rollout: removal interrupted")
	}
	return nil
}

// converge replaces active members not on target with members on target,
// batch by batch, until Replicas members run target. With watch, each
// batch is baked and a failure is returned after the batch's new members
// are removed again; without (a rollback), failures of a new member are
// retried once on another launch.
func (e *Engine) converge(ctx context.Context, svc *kiln.Service, r *kiln.Rollout, target kiln.VersionRef, watch bool) error {
	v, err := e.Registry.FindVersion(ctx, target)
	if err != nil {
		return err
	}
	if v.Provenance.Artifact == nil {
		return kiln.Errorf(kiln.EINVALID, "%s has no artifact", target)
	}
	// Forward, the service's configuration as it is declared now; back,
	// the configuration the replaced instances were given.
	var cfg *launch.Config
	var accept func(digest string) bool
	if watch {
		cfg, accept, err = e.forwardConfig(ctx, svc)
	} else {
		cfg, accept, err = e.rollbackConfig(ctx, svc, r)
	}
	if err != nil {
		return err
	}
	retries := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ms, err := e.Services.ListMembers(ctx, svc.Name)
		if err != nil {
			return err
		}
		var on, others []*kiln.Member
		for _, m := range ms {
			if m.State != kiln.MemberActive {
				continue
			}
			ok, err := e.runsConfig(ctx, m, accept)
			if err != nil {
				return err
			}
			if m.Version == target && ok {
				on = append(on, m)
			} else {
				others = append(others, m)
			}
		}
		if len(on) >= svc.Replicas && len(others) == 0 {
			return nil
		}
		t0 := time.Now()
		n := min(svc.Batch(), max(svc.Replicas-len(on), 0))
		if over := len(on) + len(others) + n - (svc.Replicas + svc.MaxSurge); svc.Batch() > svc.MaxSurge && n > 0 && over > 0 {
			// A batch larger than the surge: make room first, removing
			// old instances down to (never below) MinHealthy serving.
			if p := min(over, len(others), max(len(on)+len(others)-svc.MinHealthy(), 0)); p > 0 {
				e.say("    making room: draining and destroying %d old instance(s) first (batch %d, max surge %d)", p, svc.Batch(), svc.MaxSurge)
				if err := e.remove(ctx, svc, others[:p], "rollout: replaced by "+target.String()); err != nil {
					return err
				}
				others = others[p:]
			}
			n = max(min(n, svc.Replicas+svc.MaxSurge-len(on)-len(others)), 0)
		}
		var batch []*kiln.Member
		if n > 0 {
			e.say("--> batch %d: launching %d instance(s) of %s", r.Batch+1, n, target)
			batch, err = e.launchBatch(ctx, svc, r, target, cfg, n)
			if err != nil {
				if !watch && retries < 2 && ctx.Err() == nil {
					retries++
					e.say("    launch failed (%s); trying again", kiln.ErrorMessage(err))
					continue
				}
				return err
			}
			if err := e.activate(ctx, svc, batch); err != nil {
				return errors.Join(err, e.remove(context.WithoutCancel(ctx), svc, batch, "rollout: failed to enter the front end"))
			}
			e.say("    %d instance(s) healthy and in the front end", len(batch))
			if watch && svc.BakeTime > 0 {
				if err := e.bake(ctx, svc, batch); err != nil {
					if ctx.Err() != nil {
						return err
					}
					e.say("    bake failed: %s; taking the batch out", kiln.ErrorMessage(err))
					return errors.Join(err, e.remove(context.WithoutCancel(ctx), svc, batch, "rollout: failed during bake"))
				}
			}
			if g := svc.Policy.Gate; watch && g != nil {
				if err := e.gate().Check(ctx, g, e.say); err != nil {
					if ctx.Err() != nil {
						return err
					}
					e.say("    %s; taking the batch out", kiln.ErrorMessage(err))
					return errors.Join(err, e.remove(context.WithoutCancel(ctx), svc, batch, "rollout: metric gate failed"))
				}
			}
		}
		// Remove as many old members as keep Replicas serving (at least
		// one batch when only old ones are left above Replicas).
		surplus := len(on) + len(batch) + len(others) - svc.Replicas
		k := min(len(others), max(surplus, 0))
		if n == 0 {
			k = min(len(others), max(svc.MaxSurge, surplus))
		}
		if remaining := len(on) + len(batch) + len(others) - k; remaining < svc.MinHealthy() && k > 0 {
			k = max(0, len(on)+len(batch)+len(others)-svc.MinHealthy())
		}
		if k > 0 {
			e.say("    draining and destroying %d old instance(s)", k)
			if err := e.remove(ctx, svc, others[:k], "rollout: replaced by "+target.String()); err != nil {
				return err
			}
		}
		if n == 0 && k == 0 {
			return kiln.Errorf(kiln.EINTERNAL, "rollout of %s cannot make progress: %d on %s, %d others, %d replicas, min healthy %d", svc.Name, len(on), target, len(others), svc.Replicas, svc.MinHealthy())
		}
		r.Batch++
		r.BatchTimes = append(r.BatchTimes, time.Since(t0))
		e.say("    batch %d done in %s", r.Batch, time.Since(t0).Round(time.Millisecond))
		if err := e.Rollouts.UpdateRollout(ctx, r); err != nil {
			return err
		}
		timelineFrom(ctx).mark()
	}
}

// resolveConfig returns the service's launch configuration as declared
// now, resolved (to learn its digest and content; each launch resolves it
// again); nil, nil without one.
func (e *Engine) resolveConfig(ctx context.Context, svc *kiln.Service) (*launch.Config, *kiln.LaunchConfig, error) {
	if e.Config == nil {
		return nil, nil, nil
	}
	cfg, err := e.Config(ctx, svc)
	if err != nil || cfg == nil {
		return nil, nil, err
	}
	res, err := cfg.Resolve(svc.Environment, "", e.Launcher.Getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("configuration of service %s: %w", svc.Name, err)
	}
	return cfg, res, nil
}

// forwardConfig is the configuration a rollout launches (the service's,
// as declared now) and which instances count as given it.
func (e *Engine) forwardConfig(ctx context.Context, svc *kiln.Service) (*launch.Config, func(string) bool, error) {
	cfg, res, err := e.resolveConfig(ctx, svc)
	if err != nil || res == nil {
		return cfg, anyConfig, err
	}
	return cfg, func(d string) bool { return d == res.Digest }, nil
}

// anyConfig accepts instances whatever their configuration.
var anyConfig func(string) bool

// rollbackConfig is the configuration a rollback launches — the one the
// replaced instances were given (r.FromConfig), kept by the rollout that
// launched them — and which instances count as given it. Secrets are read
// again: one changed since gives the instances launched now its current
// value (and another digest, which counts as well). Without a kept
// configuration (instances launched before kiln kept them) the rollback
// launches with the current one and matches on version alone.
func (e *Engine) rollbackConfig(ctx context.Context, svc *kiln.Service, r *kiln.Rollout) (*launch.Config, func(string) bool, error) {
	switch {
	case r.FromConfig == "" && r.ToConfig == "":
		cfg, _, err := e.resolveConfig(ctx, svc)
		return cfg, anyConfig, err
	case r.FromConfig == "":
		e.say("    the replaced instances were given no configuration; launching %s without one", r.From)
		return nil, func(d string) bool { return d == "" }, nil
	}
	rec, err := e.Rollouts.FindLaunchConfig(ctx, r.FromConfig)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		e.say("    configuration %s of the replaced instances was not kept (they were launched before kiln kept configurations); the rollback launches with the current one", short(r.FromConfig))
		cfg, _, err := e.resolveConfig(ctx, svc)
		return cfg, anyConfig, err
	}
	if err != nil {
		return nil, nil, err
	}
	cfg := launch.ConfigFromRecord(rec)
	res, err := cfg.Resolve(svc.Environment, "", e.Launcher.Getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("previous configuration %s of service %s: %w", short(rec.Digest), svc.Name, err)
	}
	if res.Digest != rec.Digest {
		e.say("    a secret of configuration %s changed since; instances launched by the rollback get its current value (configuration %s)", short(rec.Digest), short(res.Digest))
	}
	return cfg, func(d string) bool { return d == rec.Digest || d == res.Digest }, nil
}

// membersConfig is the configuration digest the service's active members
// were given (the one most of them run; "" for none or no members).
func (e *Engine) membersConfig(ctx context.Context, svc *kiln.Service) (string, error) {
	if e.Launcher.Inventory == nil {
		return "", nil
	}
	ms, err := e.Services.ListMembers(ctx, svc.Name)
	if err != nil {
		return "", err
	}
	count := map[string]int{}
	best := ""
	for _, m := range ms {
		if m.State != kiln.MemberActive {
			continue
		}
		inst, err := e.Launcher.Inventory.FindInstance(ctx, m.InstanceID)
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			continue
		}
		if err != nil {
			return "", err
		}
		count[inst.ConfigDigest]++
		if c := count[inst.ConfigDigest]; c > count[best] || (c == count[best] && inst.ConfigDigest < best) {
			best = inst.ConfigDigest
		}
	}
	return best, nil
}

// runsConfig reports whether member m's instance was given a
// configuration accept takes (nil takes any).
func (e *Engine) runsConfig(ctx context.Context, m *kiln.Member, accept func(string) bool) (bool, error) {
	if accept == nil || e.Launcher.Inventory == nil {
		return true, nil
	}
	inst, err := e.Launcher.Inventory.FindInstance(ctx, m.InstanceID)
	if kiln.ErrorCode(err) == kiln.ENOTFOUND {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return accept(inst.ConfigDigest), nil
}

// launchBatch launches n instances of target at once and waits until each
// is healthy. On any failure it destroys the whole batch.
func (e *Engine) launchBatch(ctx context.Context, svc *kiln.Service, r *kiln.Rollout, target kiln.VersionRef, cfg *launch.Config, n int) ([]*kiln.Member, error) {
	batch := make([]*kiln.Member, n)
	for i := range batch {
		batch[i] = &kiln.Member{Service: svc.Name, InstanceID: instanceID(svc.Name, target), Version: target, State: kiln.MemberLaunching, Rollout: r.ID}
		// Recorded before the launch: an interrupted rollout finds it.
		if err := e.Services.PutMember(ctx, batch[i]); err != nil {
			return nil, e.cleanupBatch(ctx, svc, batch[:i], err)
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range batch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.launch(ctx, svc, m, cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, e.cleanupBatch(ctx, svc, batch, err)
	}
	return batch, nil
}

func (e *Engine) cleanupBatch(ctx context.Context, svc *kiln.Service, batch []*kiln.Member, err error) error {
	for _, m := range batch {
		if derr := e.destroy(context.WithoutCancel(ctx), svc, m, "rollout: launch failed"); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return err
}

// launch launches one member's instance. Its version was vetted when the
// rollout began; the launcher checks its signature again, and the status
// is not gated (a rollback launches the version it replaces again).
func (e *Engine) launch(ctx context.Context, svc *kiln.Service, m *kiln.Member, cfg *launch.Config) error {
	res, err := e.Launcher.Launch(ctx, launch.Request{
		Config:  cfg,
		Version: m.Version, ID: m.InstanceID, Environment: svc.Environment,
		Labels:   map[string]string{"kiln.service": svc.Name},
		Ports:    []kiln.PortForward{{Host: "127.0.0.1:0", Guest: svc.Port}},
		Timeout:  e.BootTimeout,
		Platform: svc.Platform,
	})
	if err != nil {
		return fmt.Errorf("launch %s: %w", m.InstanceID, err)
	}
	if len(res.Launch.Ports) == 0 {
		return kiln.Errorf(kiln.EINTERNAL, "launch %s: the platform reported no forwarded port", m.InstanceID)
	}
	m.Address = res.Instance.Address
	if err := e.Services.PutMember(ctx, m); err != nil { // still launching, now with its address
		return err
	}
	timeout := e.HealthTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	err = WaitHealthy(ctx, m.Address, svc.Health, timeout)
	timelineFrom(ctx).health(ctx, err)
	if err != nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "new instance %s of %s failed its health check (%s): %v", m.InstanceID, m.Version, svc.Health, err)
	}
	e.say("    %s healthy at %s", m.InstanceID, m.Address)
	return nil
}

// activate puts members in the front end and waits until it serves them.
func (e *Engine) activate(ctx context.Context, svc *kiln.Service, batch []*kiln.Member) error {
	for _, m := range batch {
		m.State = kiln.MemberActive
		if err := e.Services.PutMember(ctx, m); err != nil {
			return err
		}
	}
	return e.waitFrontEnd(ctx, svc)
}

// waitFrontEnd waits until the front end reports the service's current
// generation: it serves the current set, and removed members have no
// request in flight.
func (e *Engine) waitFrontEnd(ctx context.Context, svc *kiln.Service) error {
	cur, err := e.Services.FindService(ctx, svc.Name)
	if err != nil {
		return err
	}
	timeout := e.DrainTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		st, err := e.Services.ProxyStatus(ctx, svc.Name)
		if err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
			return err
		}
		if st != nil && st.Generation >= cur.Generation {
			return nil
		}
		if time.Now().After(deadline) {
			return kiln.Errorf(kiln.EUNAVAILABLE, "the front end of %s did not take the new backend set within %s (%v); is it running? start it with `kiln service start %s`", svc.Name, timeout, ErrNoFrontEnd, svc.Name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// bake watches a batch for the service's bake time: every new instance
// must pass its health checks, and the front end's error rate over the
// bake must stay at or under MaxErrorRate.
func (e *Engine) bake(ctx context.Context, svc *kiln.Service, batch []*kiln.Member) error {
	e.say("    baking for %s", svc.BakeTime)
	before, _ := e.Services.ProxyStatus(ctx, svc.Name)
	end := time.Now().Add(svc.BakeTime)
	fails := map[string]int{}
	for time.Now().Before(end) {
		for _, m := range batch {
			err := Check(ctx, m.Address, svc.Health)
			timelineFrom(ctx).health(ctx, err)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				fails[m.InstanceID]++
				if fails[m.InstanceID] >= 2 {
					return kiln.Errorf(kiln.EUNAVAILABLE, "instance %s of %s failed its health check during bake: %v", m.InstanceID, m.Version, err)
				}
			} else {
				fails[m.InstanceID] = 0
			}
		}
		if err := e.errorRate(ctx, svc, before); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return e.errorRate(ctx, svc, before)
}

// minRequestsForRate is how many requests the front end must have seen
// during bake before its error rate counts.
const minRequestsForRate = 20

func (e *Engine) errorRate(ctx context.Context, svc *kiln.Service, before *kiln.ProxyStatus) error {
	if before == nil {
		return nil
	}
	now, err := e.Services.ProxyStatus(ctx, svc.Name)
	if err != nil || now.PID != before.PID {
		return nil //nolint:nilerr // restarted or silent front end: counters start again, health checks still guard
	}
	req, errs := now.Requests-before.Requests, now.Errors-before.Errors
	if req >= minRequestsForRate && float64(errs)/float64(req) > svc.MaxErrorRate {
		return kiln.Errorf(kiln.EUNAVAILABLE, "error rate rose to %.1f%% (%d of %d requests) during bake; the limit is %.1f%%",
			100*float64(errs)/float64(req), errs, req, 100*svc.MaxErrorRate)
	}
	return nil
}

// remove drains members (out of the front end, in-flight requests done)
// and destroys them.
func (e *Engine) remove(ctx context.Context, svc *kiln.Service, ms []*kiln.Member, reason string) error {
	for _, m := range ms {
		m.State = kiln.MemberDraining
		if err := e.Services.PutMember(ctx, m); err != nil {
			return err
		}
	}
	if err := e.waitFrontEnd(ctx, svc); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	var errs []error
	for _, m := range ms {
		errs = append(errs, e.destroy(ctx, svc, m, reason))
	}
	return errors.Join(errs...)
}

// removeAll removes every member on version v (rollback of a first rollout).
func (e *Engine) removeAll(ctx context.Context, svc *kiln.Service, r *kiln.Rollout, v kiln.VersionRef) error {
	ms, err := e.Services.ListMembers(ctx, svc.Name)
	if err != nil {
		return err
	}
	var out []*kiln.Member
	for _, m := range ms {
		if m.Version == v {
			out = append(out, m)
		}
	}
	return e.remove(ctx, svc, out, fmt.Sprintf("rollout %d rolled back", r.ID))
}

// destroy destroys a member's instance, records it destroyed and forgets
// the member, in that order, so that a crash in between is finished by the
// next recover.
func (e *Engine) destroy(ctx context.Context, svc *kiln.Service, m *kiln.Member, reason string) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	if err := e.Launcher.Destroy(dctx, m.InstanceID, reason); err != nil {
		return err
	}
	e.log().Info("instance destroyed", "service", svc.Name, "instance", m.InstanceID, "reason", reason)
	return e.Services.DeleteMember(dctx, svc.Name, m.InstanceID)
}

// instanceID names a service's instance after the service and version, with
// a random suffix: "web-appserver-4-3f9a1c".
func instanceID(service string, v kiln.VersionRef) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%s-%s", service, v, hex.EncodeToString(b[:]))
}

package autopilot

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
	"github.com/kiln-project/kiln/rollout"
)

// Refresher is `kiln fleet refresh --apply`: it plans, starts the
// pipeline runs that make the missing fixes, waits for them, plans again
// and rolls the services out.
type Refresher struct {
	Plan *rollout.Refresh
	// StartRuns queues the run that builds image's fix and returns the
	// runs queued (its base's first when the estate builds it too); nil:
	// blocked items stay blocked.
	StartRuns func(ctx context.Context, image, trigger string) ([]*kiln.Run, error)
	// Wait returns when every run of ids has ended or waits for an
	// approval: pipeline.Runner.Wait in the CLI, PollRuns in kiln serve.
	Wait func(ctx context.Context, ids []int64) error
	// Runs reads the runs after Wait.
	Runs kiln.RunStore
	// Roll starts a rollout and follows it to its end.
	Roll func(ctx context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error)
	// Progress receives one line per step ("==> run 12: appserver
	// queued …"); nil: none.
	Progress io.Writer
	// Paused, when set, says whether a service is paused (kiln service
	// pause) and why: its item is planned but neither built for nor
	// rolled out. The autopilot sets it; a person's refresh does not.
	Paused func(ctx context.Context, service string) (why string, paused bool)
	// Policy, when set, is asked just before each rollout whether the
	// service's rollout policy lets kiln serve start it now (its update
	// window, its environment's rollout limit: rollout.Policy, the
	// follower's own decision). A rollout it holds back is not started;
	// it is recorded as the service's pending rollout (`kiln service
	// show` says it waits and why) and a later refresh starts it. The
	// autopilot sets it. A person's refresh (`kiln fleet refresh --apply`)
	// does not: like `kiln rollout`, it is an operator's decision and may
	// run outside the window and past the limit (it counts against it).
	Policy *rollout.Policy
	// Clock is what the policy is judged at; nil is time.Now.
	Clock kiln.Clock
}

// holdPaused marks the items of paused services blocked.
func (r *Refresher) holdPaused(ctx context.Context, plan *rollout.RefreshPlan) {
	if r.Paused == nil {
		return
	}
	for _, it := range plan.Items {
		if why, ok := r.Paused(ctx, it.Service); ok {
			it.To, it.NeedsRun = kiln.VersionRef{}, false
			it.Blocked = why
		}
	}
}

// Outcome is the plan as applied, with the runs started for it.
type Outcome struct {
	*rollout.RefreshPlan
	Runs []*kiln.Run `json:"runs,omitempty"`
}

func (r *Refresher) printf(format string, args ...any) {
	if r.Progress != nil {
		fmt.Fprintf(r.Progress, format+"\n", args...)
	}
}

// Refresh plans, and with apply makes the missing fixes and rolls out.
// It stops at the first rollout that does not succeed, as
// rollout.Refresh.Apply does.
func (r *Refresher) Refresh(ctx context.Context, opts rollout.RefreshOptions, apply bool) (*Outcome, error) {
	plan, err := r.Plan.Plan(ctx, opts)
	if err != nil {
		return nil, err
	}
	r.holdPaused(ctx, plan)
	out := &Outcome{RefreshPlan: plan}
	if !apply {
		return out, nil
	}
	if images := needRuns(plan); len(images) > 0 && r.StartRuns != nil {
		if err := r.makeFixes(ctx, out, images); err != nil {
			return out, err
		}
		if plan, err = r.Plan.Plan(ctx, opts); err != nil {
			return out, err
		}
		r.holdPaused(ctx, plan)
		out.RefreshPlan = plan
		for _, it := range plan.Items {
			if it.NeedsRun {
				it.Blocked += "; " + runsSay(out.Runs)
			}
		}
	}
	return out, r.Plan.Apply(ctx, r.Roll, r.hold(refreshWhy(opts.Advisory)), plan)
}

// refreshWhy is what a pending rollout says decided it.
func refreshWhy(advisory string) string {
	if advisory == "" {
		return "refresh"
	}
	return "refresh for " + advisory
}

func (r *Refresher) now() time.Time {
	if r.Clock != nil {
		return r.Clock()
	}
	return time.Now()
}

// hold is the Apply hook that holds back what the services' policies do
// not let start now, recording it as their pending rollout (why says
// what decided it); nil without a Policy.
func (r *Refresher) hold(why string) func(context.Context, *rollout.RefreshItem) (*rollout.Wait, error) {
	if r.Policy == nil {
		return nil
	}
	return func(ctx context.Context, it *rollout.RefreshItem) (*rollout.Wait, error) {
		svc, err := r.Policy.Services.FindService(ctx, it.Service)
		if err != nil {
			return nil, err
		}
		active, err := r.Policy.Rollouts.ActiveRollout(ctx, it.Service)
		if err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
			return nil, err
		}
		if active != nil {
			// Started meanwhile (the follower, a person): a second one is
			// refused; the next check sees where it ended.
			return &rollout.Wait{State: rollout.FollowRollingOut,
				Reason: fmt.Sprintf("waiting for rollout %d to %s, in progress (%s)", active.ID, active.To, active.State)}, nil
		}
		now := r.now()
		w, err := r.Policy.Wait(ctx, svc, now)
		if err != nil {
			return nil, err
		}
		if w == nil {
			if svc.Pending != nil {
				// Starts now: the rollout in progress tells the rest.
				return nil, r.Policy.Services.SetServicePending(ctx, svc.Name, nil)
			}
			return nil, nil
		}
		by := kiln.ActorFrom(ctx)
		if by == "" {
			by = "kiln serve"
		}
		p := &kiln.PendingRollout{To: it.To, Why: why, By: by, Since: now}
		if old := svc.Pending; old != nil && old.To == it.To {
			p.Since = old.Since // waiting since the first time it was held
		}
		r.printf("==> %s → %s held back: %s", it.Service, it.To, w.Reason)
		return w, r.Policy.Services.SetServicePending(ctx, svc.Name, p)
	}
}

// needRuns lists the images whose fix a pipeline run can make, each once,
// with why.
func needRuns(plan *rollout.RefreshPlan) map[string][]string {
	out := map[string][]string{}
	for _, it := range plan.Items {
		if !it.NeedsRun {
			continue
		}
		img := imageOf(it)
		out[img] = append(out[img], fmt.Sprintf("%s: %d instance(s) of %s", strings.Join(exposures(it), ", "), it.Instances, it.Service))
	}
	return out
}

// imageOf is the image of a planned service: its instances run it.
func imageOf(it *rollout.RefreshItem) string {
	for _, v := range it.Versions {
		if ref, err := kiln.ParseVersionRef("version", v); err == nil {
			return ref.Image
		}
	}
	return ""
}

func exposures(it *rollout.RefreshItem) []string {
	var out []string
	for _, r := range it.Reasons {
		if _, rest, ok := strings.Cut(r, " exposed to "); ok {
			id, _, _ := strings.Cut(rest, " ")
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	if len(out) == 0 {
		out = []string{"refresh"}
	}
	return out
}

func (r *Refresher) makeFixes(ctx context.Context, out *Outcome, images map[string][]string) error {
	var ids []int64
	for _, img := range sortedKeys(images) {
		if img == "" {
			continue
		}
		trigger := "refresh: " + strings.Join(images[img], "; ")
		runs, err := r.StartRuns(ctx, img, trigger)
		if err != nil {
			return fmt.Errorf("start the pipeline run that builds the fix of %s: %w", img, err)
		}
		for _, run := range runs {
			r.printf("==> run %d: %s queued (%s)", run.ID, run.Image, run.Trigger)
			ids = append(ids, run.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if err := r.Wait(ctx, ids); err != nil {
		return fmt.Errorf("wait for the pipeline runs %v: %w", ids, err)
	}
	for _, id := range ids {
		run, err := r.Runs.FindRun(ctx, id)
		if err != nil {
			return err
		}
		out.Runs = append(out.Runs, run)
		r.printf("==> run %d: %s", run.ID, RunSummary(run))
	}
	return nil
}

// RunSummary says how a run ended, and what to do when it waits.
func RunSummary(run *kiln.Run) string {
	made := ""
	if run.Version != nil {
		made = ", " + run.Version.String()
	}
	switch run.Status {
	case kiln.RunWaiting:
		for _, st := range run.Stages {
			if st.Status == kiln.StageWaiting {
				return fmt.Sprintf("%s waits for approval of stage %s%s: `kiln approve %d %s`", run.Image, st.Name, made, run.ID, st.Name)
			}
		}
		return fmt.Sprintf("%s waits for an approval%s", run.Image, made)
	case kiln.RunSucceeded:
		return fmt.Sprintf("%s succeeded%s", run.Image, made)
	}
	reason := ""
	if run.Reason != "" {
		reason = ": " + run.Reason
	}
	return fmt.Sprintf("%s %s%s%s; see `kiln run logs %d`", run.Image, run.Status, made, reason, run.ID)
}

// runsSay is what the runs did for a service still blocked after them.
func runsSay(runs []*kiln.Run) string {
	if len(runs) == 0 {
		return "no pipeline run was started"
	}
	var parts []string
	for _, run := range runs {
		parts = append(parts, fmt.Sprintf("run %d %s", run.ID, RunSummary(run)))
	}
	return "after " + strings.Join(parts, "; ")
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// EstateRuns is the usual Refresher.StartRuns: it queues the image's run
// (and its base's, when the same estate builds the base) from the estate
// dir with vars, or, when dir is empty, from the estate and variables of
// the image's newest run. A run that is already queued takes the trigger
// instead (runs coalesce).
func EstateRuns(runs kiln.RunStore, load func(dir string, vars map[string]string) (*definition.Estate, error),
	dir string, vars map[string]string) func(ctx context.Context, image, trigger string) ([]*kiln.Run, error) {
	return func(ctx context.Context, image, trigger string) ([]*kiln.Run, error) {
		d, vs := dir, vars
		if d == "" {
			last, _, err := runs.ListRuns(ctx, kiln.RunFilter{Image: image, Limit: 1})
			if err != nil {
				return nil, err
			}
			if len(last) == 0 {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "--estate", "no pipeline run of %s is known, so kiln cannot tell which estate defines it; give the estate directory with --estate DIR", image)
			}
			d, vs = last[0].Estate, last[0].Vars
		}
		est, err := load(d, vs)
		if err != nil {
			return nil, err
		}
		names := []string{image}
		for img, _ := est.Images[image]; img != nil && img.Base != nil; img = est.Images[img.Base.Image] {
			if _, ok := est.Images[img.Base.Image]; !ok {
				break
			}
			names = append(names, img.Base.Image)
		}
		return pipeline.EnqueueFor(ctx, runs, est, vs, names, trigger, false, kiln.ActorFrom(ctx))
	}
}

// PollRuns is a Refresher.Wait for runs another process carries out (kiln
// serve's worker): it reads them every interval and prints each stage as
// it ends.
func PollRuns(runs kiln.RunStore, every time.Duration, progress io.Writer) func(ctx context.Context, ids []int64) error {
	return func(ctx context.Context, ids []int64) error {
		seen := map[string]bool{}
		for {
			pending := false
			for _, id := range ids {
				run, err := runs.FindRun(ctx, id)
				if err != nil {
					return err
				}
				for _, st := range run.Stages {
					key := fmt.Sprintf("%d/%s/%s", id, st.Name, st.Status)
					ended := st.Status != kiln.StagePending && st.Status != kiln.StageRunning
					if ended && !seen[key] {
						seen[key] = true
						if progress != nil {
							fmt.Fprintf(progress, "    run %d %s: %s %s %s\n", id, run.Image, st.Name, st.Status, st.Detail)
						}
					}
				}
				if !run.Status.Done() && run.Status != kiln.RunWaiting {
					pending = true
				}
			}
			if !pending {
				return nil
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(every):
			}
		}
	}
}

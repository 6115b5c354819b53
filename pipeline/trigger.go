package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// ScheduleStore records schedule firings so that of several servers one
// fires each; the store's *DB implements it.
type ScheduleStore interface {
	ClaimSchedule(ctx context.Context, estate, image, cron string, next func(time.Time) time.Time) (bool, error)
}

// Estate names an estate a server watches, with its variables.
type Estate struct {
	Dir  string
	Vars map[string]string
}

// Trigger watches estates for `kiln serve`: it fires cron schedules and
// queues a run for every image whose inputs changed in a way its
// pipeline's `on` list names.
type Trigger struct {
	Runs       kiln.RunStore
	Schedules  ScheduleStore
	Checker    *Checker
	Estates    []Estate
	LoadEstate func(dir string, vars map[string]string) (*definition.Estate, error)
	Logger     *slog.Logger
}

// Tick checks every estate once and returns the runs it queued.
func (t *Trigger) Tick(ctx context.Context) ([]*kiln.Run, error) {
	var out []*kiln.Run
	for _, e := range t.Estates {
		est, err := t.LoadEstate(e.Dir, e.Vars)
		if err != nil {
			return out, fmt.Errorf("read estate %s: %w", e.Dir, err)
		}
		runs, err := t.tickEstate(ctx, est, e.Vars)
		out = append(out, runs...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

func (t *Trigger) tickEstate(ctx context.Context, est *definition.Estate, vars map[string]string) ([]*kiln.Run, error) {
	reasons := map[string][]string{}
	for _, name := range est.Order {
		p := est.PipelineFor(name)
		if p.Schedule == "" {
			continue
		}
		sched, err := definition.CronSchedule(p.Schedule)
		if err != nil {
			return nil, err
		}
		fire, err := t.Schedules.ClaimSchedule(ctx, est.Dir, name, p.Schedule, sched.Next)
		if err != nil {
			return nil, err
		}
		if fire {
			reasons[name] = append(reasons[name], "schedule "+p.Schedule)
		}
	}
	checker := *t.Checker
	checker.Packages = false
	for _, name := range est.Order {
		checker.Packages = checker.Packages || contains(est.PipelineFor(name).On, "packages")
	}
	statuses, err := checker.Check(ctx, est)
	if err != nil {
		return nil, err
	}
	for _, st := range statuses {
		if st.UpToDate {
			continue
		}
		if r := st.Run; r != nil && (r.Status == kiln.RunQueued || r.Status == kiln.RunRunning ||
			r.Status == kiln.RunFailed || r.Status == kiln.RunInterrupted) {
			// A run is on its way; or the last one failed or was
			// interrupted, which a person looks at first. A run waiting
			// for an approval does not hold up the next version.
			continue
		}
		on := est.PipelineFor(st.Image).On
		for _, r := range st.Reasons {
			if why, ok := r.RunTrigger(on); ok {
				reasons[st.Image] = append(reasons[st.Image], why)
			}
		}
	}
	var out []*kiln.Run
	queued := map[string]int64{}
	for _, name := range est.Order {
		if len(reasons[name]) == 0 {
			continue
		}
		img := est.Images[name]
		p := est.PipelineFor(name)
		nr := &kiln.NewRun{Image: name, Estate: est.Dir, Vars: vars, Trigger: strings.Join(reasons[name], "; "), Stages: StagesFor(p)}
		if img.Base != nil {
			nr.After = queued[img.Base.Image]
		}
		run, _, err := t.Runs.EnqueueRun(ctx, nr)
		if err != nil {
			return out, err
		}
		queued[name] = run.ID
		out = append(out, run)
		if t.Logger != nil {
			t.Logger.Info("pipeline run queued", "run", run.ID, "image", name, "trigger", nr.Trigger)
		}
	}
	return out, nil
}

// RunTrigger is the text a run queued for r says it was started for, and
// whether a pipeline with the triggers on starts one: the reason named by
// its trigger, as `kiln status` shows it ("packages: apt source demo (…)
// published a new Release since appserver-1 (…)"); an image without a
// version is built whatever on says.
func (r Reason) RunTrigger(on []string) (string, bool) {
	switch {
	case r.Trigger == "none":
		return r.Message, true
	case contains(on, r.Trigger):
		return r.Trigger + ": " + r.Message, true
	}
	return "", false
}

// Run ticks every interval until ctx ends.
func (t *Trigger) Run(ctx context.Context, every time.Duration) {
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		if _, err := t.Tick(ctx); err != nil && ctx.Err() == nil && t.Logger != nil {
			t.Logger.Error("pipeline triggers", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tk.C:
		}
	}
}

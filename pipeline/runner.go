package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
)

// Builder makes candidate versions; *build.Builder is the one kiln uses.
type Builder interface {
	Build(ctx context.Context, est *definition.Estate, img *definition.Image, opts build.Options) (*build.Result, error)
}

// Store is what a Runner keeps its runs and channels in; the store's *DB
// implements all of it.
type Store interface {
	kiln.RunStore
	kiln.ChannelStore
}

// Runner claims queued runs and carries them through their stages. Several
// runners (in several processes) may share one database: the queue hands
// each run to one of them, and one run at a time per image.
type Runner struct {
	Store    Store
	Registry kiln.Registry
	Builder  Builder
	Tester   *Tester
	// Advisories feeds the scan stage; nil scans against no advisories
	// (the stage then passes and says so).
	Advisories kiln.AdvisoryStore
	// LoadEstate reads a run's estate with its variables.
	LoadEstate func(dir string, vars map[string]string) (*definition.Estate, error)
	Logger     *slog.Logger
	// Worker names this process in the queue ("host:pid"); empty uses
	// WorkerName().
	Worker string
	// Progress also receives every log line (the CLI's terminal); nil
	// keeps them in the run log only.
	Progress io.Writer
	// Heartbeat is how often a running run's lease is renewed (default
	// 10 s); a run whose heartbeat is older than Lease (default 2 min) is
	// taken to be interrupted.
	Heartbeat time.Duration
	Lease     time.Duration
	// Poll is how often an idle worker looks for work (default 2 s).
	Poll time.Duration
	// Parallel is how many runs this process carries at once (default 1):
	// once a base image is ready, the images built on it build and test
	// side by side. The queue still never runs two runs of one image at
	// once, and a run queued after another waits for it. Each slot holds
	// its runs under its own worker name (Worker, then Worker/2, …), so a
	// lost lease or an interruption ends only the runs of that slot.
	Parallel int
	// Resume makes this runner kiln serve's worker for interruptions:
	// Recover queues again, from the interrupted stage, the runs
	// interrupted because their worker died, went silent or was stopped
	// (store's ResumeRuns: once per interruption, at most MaxResumes times
	// in a row), and a run this runner stops because its ctx ended is
	// left for a worker to resume. Unset (`kiln run` in a terminal), a run
	// its ctx stops — the user's Ctrl-C — waits for `kiln run retry`.
	Resume bool
	// MaxResumes is how many times in a row a run is resumed
	// automatically (default 3); a run interrupted once more is left for
	// a person (a build that kills its worker would otherwise loop).
	MaxResumes int
}

// WorkerName is "hostname:pid", the name a process holds runs under.
func WorkerName() string {
	h, _ := os.Hostname()
	return fmt.Sprintf("%s:%d", h, os.Getpid())
}

func (r *Runner) worker() string {
	if r.Worker == "" {
		r.Worker = WorkerName()
	}
	return r.Worker
}

// slotWorker is the worker name of slot i (0 is Worker itself).
func (r *Runner) slotWorker(i int) string {
	if i == 0 {
		return r.worker()
	}
	return fmt.Sprintf("%s/%d", r.worker(), i+1)
}

func (r *Runner) parallel() int {
	if r.Parallel < 1 {
		return 1
	}
	return r.Parallel
}

func (r *Runner) log() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}

func (r *Runner) maxResumes() int {
	if r.MaxResumes < 1 {
		return 3
	}
	return r.MaxResumes
}

func (r *Runner) lease() time.Duration {
	if r.Lease <= 0 {
		return 2 * time.Minute
	}
	return r.Lease
}

// StagesFor returns the stages of an image's pipeline, ready to queue.
func StagesFor(p *definition.Pipeline) []kiln.Stage {
	var out []kiln.Stage
	for _, s := range p.Stages {
		out = append(out, kiln.Stage{Name: s, Kind: kiln.StageKind(s), Gate: kiln.GateAuto})
	}
	for _, e := range p.Environments {
		out = append(out, kiln.Stage{Name: e.Name, Kind: kiln.StageDeliver, Environment: e.Name, Gate: kiln.Gate(e.Gate)})
	}
	return out
}

// AutoDelivery returns the first image of names (all of est's when empty)
// whose pipeline delivers to an environment without waiting for an
// approval (gate = "auto"), and that environment; empty when none does.
func AutoDelivery(est *definition.Estate, names []string) (image, environment string) {
	if len(names) == 0 {
		names = est.Order
	}
	for _, name := range names {
		for _, st := range StagesFor(est.PipelineFor(name)) {
			if st.Kind == kiln.StageDeliver && st.Gate != kiln.GateApproval {
				return name, st.Environment
			}
		}
	}
	return "", ""
}

// Enqueue queues runs for the named images of est (all when names is
// empty) in dependency order; an image built on another image queued in
// the same call waits after that image's run and uses the version it makes
// ready. It returns the runs (coalesced ones included).
func Enqueue(ctx context.Context, st kiln.RunStore, est *definition.Estate, vars map[string]string, names []string, trigger string, force bool) ([]*kiln.Run, error) {
	return EnqueueFor(ctx, st, est, vars, names, trigger, force, "")
}

// EnqueueFor is Enqueue for runs asked for by requestedBy (an actor such
// as "token:ci"), as whom the worker then carries them out.
func EnqueueFor(ctx context.Context, st kiln.RunStore, est *definition.Estate, vars map[string]string, names []string, trigger string, force bool, requestedBy string) ([]*kiln.Run, error) {
	want := map[string]bool{}
	for _, n := range names {
		if _, err := est.Image(n); err != nil {
			return nil, err
		}
		want[n] = true
	}
	queued := map[string]int64{}
	var out []*kiln.Run
	for _, name := range est.Order {
		if len(want) > 0 && !want[name] {
			continue
		}
		img := est.Images[name]
		nr := &kiln.NewRun{Image: name, Estate: est.Dir, Vars: vars, Trigger: trigger, Force: force,
			Stages: StagesFor(est.PipelineFor(name)), RequestedBy: requestedBy}
		if img.Base != nil {
			nr.After = queued[img.Base.Image]
		}
		run, _, err := st.EnqueueRun(ctx, nr)
		if err != nil {
			return out, fmt.Errorf("queue a run of %s: %w", name, err)
		}
		queued[name] = run.ID
		out = append(out, run)
	}
	return out, nil
}

// RunOnce claims one runnable run and carries it as far as it goes. It
// reports whether there was one.
func (r *Runner) RunOnce(ctx context.Context) (bool, error) {
	return r.runOnce(ctx, r.worker())
}

func (r *Runner) runOnce(ctx context.Context, worker string) (bool, error) {
	run, err := r.Store.ClaimRun(ctx, worker)
	if err != nil || run == nil {
		return false, err
	}
	return true, r.Execute(ctx, run)
}

// slots runs queued runs on up to Parallel slots until done reports true
// (asked after every claim that found nothing and every run that ended)
// or ctx ends; it waits for the runs in progress before it returns. Each
// slot claims again right after its run ends; an idle one looks again
// every poll. An error of done ends it; a run's error is given to onErr.
func (r *Runner) slots(ctx context.Context, poll time.Duration, done func() (bool, error), onErr func(error)) error {
	r.worker() // name the process before the slots read it
	n := r.parallel()
	ended := make(chan int, n)
	busy := make([]bool, n)
	active := 0
	defer func() {
		for ; active > 0; active-- {
			<-ended
		}
	}()
	for {
		claimed := false
		for i := 0; i < n && ctx.Err() == nil; i++ {
			if busy[i] {
				continue
			}
			run, err := r.Store.ClaimRun(ctx, r.slotWorker(i))
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				onErr(err)
				break
			}
			if run == nil {
				break
			}
			claimed = true
			busy[i] = true
			active++
			go func(i int) {
				if err := r.Execute(ctx, run); err != nil {
					onErr(err)
				}
				ended <- i
			}(i)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !claimed && active == 0 {
			ok, err := done()
			if err != nil || ok {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case i := <-ended:
			busy[i] = false
			active--
			// Drain the others that ended meanwhile, then claim again.
			for more := true; more; {
				select {
				case j := <-ended:
					busy[j] = false
					active--
				default:
					more = false
				}
			}
		case <-time.After(poll):
		}
	}
}

// Wait runs queued runs in this process (Parallel at once) until every
// run in ids has ended or waits for an approval. Runs held by other
// processes are waited for.
func (r *Runner) Wait(ctx context.Context, ids []int64) error {
	poll := r.Poll
	if poll <= 0 {
		poll = time.Second
	}
	return r.slots(ctx, poll, func() (bool, error) { return r.ended(ctx, ids) },
		func(err error) { r.log().Warn("pipeline run", "err", err) })
}

// ended reports whether every run in ids has ended or waits for an
// approval.
func (r *Runner) ended(ctx context.Context, ids []int64) (bool, error) {
	for _, id := range ids {
		run, err := r.Store.FindRun(ctx, id)
		if err != nil {
			return false, err
		}
		if !run.Status.Done() && run.Status != kiln.RunWaiting {
			return false, nil
		}
	}
	return true, nil
}

// Work claims and runs queued runs until ctx ends (kiln serve's worker).
func (r *Runner) Work(ctx context.Context) error {
	poll := r.Poll
	if poll <= 0 {
		poll = 2 * time.Second
	}
	_ = r.slots(ctx, poll, func() (bool, error) { return false, nil },
		func(err error) {
			if ctx.Err() == nil {
				r.log().Error("pipeline run", "err", err)
			}
		})
	return nil // stopping is the normal end; the runs are marked interrupted
}

// Recover marks interrupted the runs held by processes of this host that
// no longer exist, and those of any host whose heartbeat is older than the
// lease, and destroys the test instances they left. With Resume it then
// queues again every interrupted run whose resume is pending (these and
// those other workers marked), each once across all workers. It returns
// the runs it marked interrupted.
func (r *Runner) Recover(ctx context.Context) ([]*kiln.Run, error) {
	running, _, err := r.Store.ListRuns(ctx, kiln.RunFilter{Status: []kiln.RunStatus{kiln.RunRunning}})
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	var dead []string
	for _, run := range running {
		h, pid, ok := strings.Cut(run.Worker, ":")
		pid, _, _ = strings.Cut(pid, "/") // a slot's name: host:pid/N
		n, err := strconv.Atoi(pid)
		if !ok || err != nil || h != host || n == os.Getpid() {
			continue
		}
		if errors.Is(syscall.Kill(n, 0), syscall.ESRCH) {
			dead = append(dead, run.Worker)
		}
	}
	runs, err := r.Store.InterruptRuns(ctx, dead, time.Now().Add(-r.lease()), "the kiln process running it ended during the run", true)
	if err != nil {
		return nil, err
	}
	for _, run := range runs {
		if r.Resume {
			r.log().Warn("pipeline run interrupted; resuming it", "run", run.ID, "image", run.Image, "reason", run.Reason)
		} else {
			r.log().Warn("pipeline run interrupted; a kiln serve worker resumes it, or `kiln run retry`", "run", run.ID, "image", run.Image, "reason", run.Reason)
		}
		r.destroyTestInstances(ctx, run)
	}
	if !r.Resume {
		return runs, nil
	}
	resumed, err := r.Store.ResumeRuns(ctx, r.maxResumes(), "resumed by worker "+r.worker()+" after an interruption")
	if err != nil {
		return runs, fmt.Errorf("resume interrupted runs: %w", err)
	}
	for _, run := range resumed {
		if run.Status == kiln.RunQueued {
			r.log().Info("pipeline run resumed after an interruption", "run", run.ID, "image", run.Image, "resumes", run.Resumes, "from", pendingStage(run))
		} else {
			r.log().Warn("pipeline run not resumed", "run", run.ID, "image", run.Image, "reason", run.Reason)
		}
	}
	return runs, nil
}

// pendingStage names the first stage a queued run will carry out.
func pendingStage(run *kiln.Run) string {
	for _, st := range run.Stages {
		if st.Status == kiln.StagePending {
			return st.Name
		}
	}
	return ""
}

// destroyTestInstances removes the temporary test instances an
// interrupted run left.
func (r *Runner) destroyTestInstances(ctx context.Context, run *kiln.Run) {
	if r.Tester == nil || r.Tester.Launcher == nil || r.Tester.Launcher.Inventory == nil || run.Version == nil {
		return
	}
	l := r.Tester.Launcher
	insts, _, err := l.Inventory.ListInstances(ctx, kiln.InstanceFilter{Version: run.Version, Environment: TestEnvironment})
	if err != nil {
		r.log().Warn("list test instances of an interrupted run", "run", run.ID, "err", err)
		return
	}
	for _, inst := range insts {
		if err := l.Destroy(ctx, inst.ID, fmt.Sprintf("run %d was interrupted", run.ID)); err != nil {
			r.log().Warn("destroy test instance of an interrupted run", "instance", inst.ID, "err", err)
		}
	}
}

// runLog writes a run's log to the store (and the Progress writer), one
// chunk per write, under the current stage.
type runLog struct {
	r     *Runner
	ctx   context.Context
	id    int64
	mu    sync.Mutex
	stage string
}

func (l *runLog) setStage(s string) {
	l.mu.Lock()
	l.stage = s
	l.mu.Unlock()
}

func (l *runLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	stage := l.stage
	l.mu.Unlock()
	if l.r.Progress != nil {
		_, _ = l.r.Progress.Write(p)
	}
	if err := l.r.Store.AppendRunLog(context.WithoutCancel(l.ctx), l.id, stage, string(p)); err != nil {
		l.r.log().Warn("append to run log", "run", l.id, "err", err)
	}
	return len(p), nil
}

func (l *runLog) printf(format string, args ...any) {
	fmt.Fprintf(l, format+"\n", args...)
}

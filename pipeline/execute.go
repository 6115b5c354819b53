package pipeline

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
)

// exec is one claimed run being carried through its stages.
type exec struct {
	r *Runner
	// worker is the name the run is held under (its slot's).
	worker string
	run    *kiln.Run
	est    *definition.Estate
	img    *definition.Image
	p      *definition.Pipeline
	log    *runLog
	ver    *kiln.Version
	made   bool // this run (or an earlier attempt of it) built the version
	// scanAhead delivers the scan stage's reading (the version's packages
	// against the advisories), started with the test stage before it so
	// that it runs while the test instance boots; nil: the scan stage
	// reads when it runs.
	scanAhead chan scanReading
}

// scanReading is what the scan stage reads: the version with its package
// list and the findings. Only reading: the stage records the outcome (and
// fails the version) in its turn.
type scanReading struct {
	v   *kiln.Version
	res *ScanResult
	err error
	// note says where the release came from when the definition did not
	// name it; the scan stage prints it (the reading may run beside the
	// test stage's output).
	note string
}

// errWaiting stops a run at a gate that waits for an approval.
var errWaiting = errors.New("waiting for approval")

// Execute carries a claimed run through its stages, resuming after the
// stages that already passed. It renews the run's lease while it works and
// stops when the lease is lost. A cancelled ctx leaves the run
// interrupted: with Resume, for a worker to resume; without, for `kiln
// run retry`.
func (r *Runner) Execute(ctx context.Context, run *kiln.Run) error {
	if run.RequestedBy != "" {
		// Everything the run does (stages, status changes, promotions) is
		// done, and audited, in the name of whoever asked for it.
		ctx = kiln.WithActor(ctx, run.RequestedBy)
	}
	// The run is held under the name it was claimed with (a slot's).
	worker := run.Worker
	if worker == "" {
		worker = r.worker()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	every := r.Heartbeat
	if every <= 0 {
		every = 10 * time.Second
	}
	hbDone := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := r.Store.Heartbeat(ctx, run.ID, worker); kiln.ErrorCode(err) == kiln.ECONFLICT {
					cancel(err)
					return
				}
			}
		}
	}()
	defer func() { cancel(nil); <-hbDone }()

	e := &exec{r: r, worker: worker, run: run, log: &runLog{r: r, ctx: ctx, id: run.ID}}
	e.log.printf("==> run %d of %s (%s), worker %s", run.ID, run.Image, run.Trigger, worker)
	err := e.stages(ctx)
	bg := context.WithoutCancel(ctx)
	switch {
	case errors.Is(err, errWaiting):
		return nil
	case err != nil && ctx.Err() != nil:
		why := "kiln was stopped during the run"
		if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
			why = kiln.ErrorMessage(c)
		}
		if r.Resume {
			e.log.printf("==> run %d interrupted: %s; a pipeline worker resumes it", run.ID, why)
		} else {
			e.log.printf("==> run %d interrupted: %s; resume with `kiln run retry %d`", run.ID, why, run.ID)
		}
		if _, ierr := r.Store.InterruptRuns(bg, []string{worker}, time.Time{}, why, r.Resume); ierr != nil {
			r.log().Error("mark run interrupted", "run", run.ID, "err", ierr)
		}
		return err
	case err != nil:
		e.log.printf("==> run %d failed: %s", run.ID, kiln.ErrorMessage(err))
		if ferr := r.Store.FinishRun(bg, run.ID, worker, kiln.RunFailed, kiln.ErrorMessage(err)); ferr != nil {
			return errors.Join(err, ferr)
		}
		return err
	}
	e.log.printf("==> run %d of %s succeeded", run.ID, run.Image)
	if err := r.Store.FinishRun(bg, run.ID, worker, kiln.RunSucceeded, ""); err != nil {
		return err
	}
	return e.cascade(bg)
}

func (e *exec) stages(ctx context.Context) error {
	r, run := e.r, e.run
	est, err := r.LoadEstate(run.Estate, run.Vars)
	if err != nil {
		return fmt.Errorf("read estate %s: %w", run.Estate, err)
	}
	img, err := est.Image(run.Image)
	if err != nil {
		return err
	}
	e.est, e.img, e.p = est, img, est.PipelineFor(run.Image)
	if run.Version != nil {
		if e.ver, err = r.Registry.FindVersion(ctx, *run.Version); err != nil {
			return err
		}
		e.made = true
	}
	lastCheck := -1
	for i, st := range run.Stages {
		if st.Kind != kiln.StageDeliver {
			lastCheck = i
		}
	}
	for i := range run.Stages {
		st := run.Stages[i]
		if st.Status.Passed() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if st.Kind == kiln.StageDeliver && e.ver != nil {
			// Nothing to deliver, so nothing to approve: the environment
			// runs this version already.
			env := st.Environment
			if env == "" {
				env = st.Name
			}
			if c, err := r.Store.FindChannel(ctx, e.ver.Image, env); err == nil && c.Version == e.ver.Ref() {
				st.Status, st.Detail = kiln.StageSkipped, fmt.Sprintf("%s is the version in %s already", e.ver.Name, env)
				st.StartedAt, st.FinishedAt = time.Now().UTC(), time.Now().UTC()
				if err := e.update(ctx, i, st); err != nil {
					return err
				}
				e.log.printf("==> %s: %s", st.Name, st.Detail)
				continue
			}
		}
		if st.Kind == kiln.StageDeliver && st.Gate == kiln.GateApproval && st.Status != kiln.StageApproved {
			st.Status, st.Detail = kiln.StageWaiting, fmt.Sprintf("waits for approval: kiln approve %d %s", run.ID, st.Name)
			if err := e.update(ctx, i, st); err != nil {
				return err
			}
			e.log.printf("==> %s: %s", st.Name, st.Detail)
			if err := r.Store.FinishRun(ctx, run.ID, e.worker, kiln.RunWaiting, "stage "+st.Name+" "+st.Detail); err != nil {
				return err
			}
			return errWaiting
		}
		approvedBy := st.ApprovedBy
		st = kiln.Stage{Name: st.Name, Kind: st.Kind, Environment: st.Environment, Gate: st.Gate, ApprovedBy: approvedBy,
			Status: kiln.StageRunning, StartedAt: time.Now().UTC()}
		if err := e.update(ctx, i, st); err != nil {
			return err
		}
		e.log.setStage(st.Name)
		if st.Kind == kiln.StageTest {
			e.startScan(ctx, run.Stages[i+1:])
		}
		status, detail, err := e.stage(ctx, &st)
		st.FinishedAt = time.Now().UTC()
		if err != nil {
			if ctx.Err() != nil {
				return err // Execute marks it interrupted
			}
			st.Status, st.Detail = kiln.StageFailed, kiln.ErrorMessage(err)
			if uerr := e.update(context.WithoutCancel(ctx), i, st); uerr != nil {
				return errors.Join(err, uerr)
			}
			return fmt.Errorf("stage %s: %w", st.Name, err)
		}
		st.Status, st.Detail = status, detail
		if err := e.update(ctx, i, st); err != nil {
			return err
		}
		e.log.printf("==> %s: %s (%s)", st.Name, status, detail)
		if i == lastCheck {
			if err := e.markReady(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

func (e *exec) update(ctx context.Context, i int, st kiln.Stage) error {
	e.run.Stages[i] = st
	var ref *kiln.VersionRef
	if e.ver != nil {
		r := e.ver.Ref()
		ref = &r
		e.run.Version = ref
	}
	return e.r.Store.UpdateStage(ctx, e.run.ID, e.worker, i, st, ref)
}

// stage runs one stage and says how it ended; an error fails the stage.
func (e *exec) stage(ctx context.Context, st *kiln.Stage) (kiln.StageStatus, string, error) {
	if st.Kind != kiln.StageBuild && e.ver == nil {
		return "", "", kiln.Errorf(kiln.ECONFLICT, "no version to %s: the build stage has not made or found one", st.Kind)
	}
	switch st.Kind {
	case kiln.StageBuild:
		return e.build(ctx)
	case kiln.StageTest:
		return e.test(ctx)
	case kiln.StageScan:
		return e.scan(ctx)
	case kiln.StageDeliver:
		return e.deliver(ctx, st.Environment)
	}
	return "", "", kiln.Errorf(kiln.EINVALID, "unknown stage kind %q", st.Kind)
}

func (e *exec) build(ctx context.Context) (kiln.StageStatus, string, error) {
	res, err := e.r.Builder.Build(ctx, e.est, e.img, build.Options{
		Force: e.run.Force, Progress: e.log, BuiltBy: fmt.Sprintf("kiln pipeline run %d", e.run.ID),
	})
	if err != nil {
		return "", "", err
	}
	if res.UpToDate {
		e.ver = res.Latest
		switch e.ver.Status {
		case kiln.StatusFailed, kiln.StatusRevoked:
			return "", "", kiln.Errorf(kiln.ECONFLICT, "%s has the same inputs and is %s; change the definition, or run with --force to build it again", e.ver.Name, e.ver.Status)
		}
		return kiln.StageSkipped, fmt.Sprintf("up to date: %s (%s) has the same definition, files and origin", e.ver.Name, e.ver.Status), nil
	}
	e.ver, e.made = res.Version, true
	if err := RecordSuite(ctx, e.r.Registry, e.ver.Ref(), e.img); err != nil {
		return "", "", err
	}
	return kiln.StagePassed, fmt.Sprintf("built %s in %s", e.ver.Name, res.Elapsed.Round(100*time.Millisecond)), nil
}

func (e *exec) test(ctx context.Context) (kiln.StageStatus, string, error) {
	if e.ver.Status != kiln.StatusCandidate {
		return kiln.StageSkipped, fmt.Sprintf("%s is %s already", e.ver.Name, e.ver.Status), nil
	}
	if len(e.img.TestPaths) == 0 {
		return "", "", kiln.Errorf(kiln.EINVALID, "image %s declares no server tests; add tests = [\"tests/%s.yaml\"] to %s, or drop \"test\" from its pipeline's stages", e.img.Name, e.img.Name, e.img.File)
	}
	if e.r.Tester == nil {
		return "", "", kiln.Errorf(kiln.EUNAVAILABLE, "this kiln has no platform to boot test instances on")
	}
	t := *e.r.Tester
	t.Progress = e.log
	opts := TestOptions{Platform: e.p.Test.Platform}
	// The suite recorded at build time is the one to run; a version whose
	// build was interrupted before it was recorded gets the estate's.
	if _, err := e.r.Registry.Attachment(ctx, e.ver.Ref(), SuiteAttachment); kiln.ErrorCode(err) == kiln.ENOTFOUND {
		if opts.Suite, err = ImageSuite(e.img); err != nil {
			return "", "", err
		}
	}
	res, err := t.Test(ctx, e.ver.Ref(), opts)
	if err != nil {
		return "", "", err
	}
	if e.ver, err = e.r.Registry.FindVersion(ctx, e.ver.Ref()); err != nil {
		return "", "", err
	}
	if !res.Passed {
		return "", "", kiln.Errorf(kiln.ECONFLICT, "%s failed its server tests: %s (report: `kiln version attachments %s %s`)", e.ver.Name, res.Reason, e.ver.Name, ReportAttachment)
	}
	return kiln.StagePassed, res.Reason, nil
}

// startScan starts the scan stage's reading in the background when one
// of the stages after the test stage about to run (later) is a scan still
// to run: the scan then runs while the test instance boots.
func (e *exec) startScan(ctx context.Context, later []kiln.Stage) {
	if e.scanAhead != nil || e.ver == nil || e.ver.Status == kiln.StatusReady {
		return
	}
	for _, st := range later {
		if st.Kind == kiln.StageScan && !st.Status.Passed() {
			ch := make(chan scanReading, 1)
			e.scanAhead = ch
			ref := e.ver.Ref()
			go func() { ch <- e.readScan(ctx, ref) }()
			return
		}
	}
}

// readScan reads the version (with its package list) and matches it
// against the advisories.
func (e *exec) readScan(ctx context.Context, ref kiln.VersionRef) scanReading {
	release := ""
	if d := debianOf(e.est, e.img); d != nil {
		release = d.Suite
	}
	v, err := e.r.Registry.FindVersion(ctx, ref) // with its package list
	if err != nil {
		return scanReading{err: err}
	}
	note := ""
	if release == "" {
		// An origin that names no suite (a tarball, an import): the
		// image's own base-files says which release it is.
		if release = advisory.ReleaseOfPackages(v.Provenance.Packages); release != "" {
			note = "release " + release + ", from the image's base-files"
		}
	}
	res, err := Scan(ctx, e.r.Advisories, v, release, e.p.Scan)
	return scanReading{v: v, res: res, err: err, note: note}
}

func (e *exec) scan(ctx context.Context) (kiln.StageStatus, string, error) {
	if e.ver.Status == kiln.StatusReady {
		return kiln.StageSkipped, e.ver.Name + " is ready already", nil
	}
	var rd scanReading
	if ch := e.scanAhead; ch != nil {
		e.scanAhead = nil
		select {
		case rd = <-ch:
		case <-ctx.Done():
			return "", "", ctx.Err()
		}
		if rd.err == nil {
			// The version's status as it is now (the test stage moved it);
			// its packages do not change.
			if rd.v, rd.err = e.r.Registry.FindVersion(ctx, e.ver.Ref()); rd.err != nil {
				return "", "", rd.err
			}
		}
	} else {
		rd = e.readScan(ctx, e.ver.Ref())
	}
	if rd.err != nil {
		return "", "", rd.err
	}
	v, res := rd.v, rd.res
	if rd.note != "" {
		e.log.printf("    %s", rd.note)
	}
	for _, line := range res.Lines() {
		e.log.printf("    %s", line)
	}
	if len(res.Affected) == 0 {
		return kiln.StagePassed, res.Summary(), nil
	}
	if e.p.Scan.OnAffected == "warn" {
		return kiln.StageWarned, res.Summary(), nil
	}
	if v.Status == kiln.StatusCandidate || v.Status == kiln.StatusTested {
		if _, err := e.r.Registry.SetStatus(ctx, v.Ref(), kiln.StatusFailed, "scan stage: "+res.Summary()); err != nil {
			return "", "", err
		}
	}
	return "", "", kiln.Errorf(kiln.ECONFLICT, "%s (policy: fail; set scan { on_affected = \"warn\" } to let it through)", res.Summary())
}

// markReady tags the version ready after the last non-delivery stage.
func (e *exec) markReady(ctx context.Context) error {
	v, err := e.r.Registry.FindVersion(ctx, e.ver.Ref())
	if err != nil {
		return err
	}
	if v.Status == kiln.StatusReady {
		e.ver = v
		return nil
	}
	if v.Status == kiln.StatusCandidate {
		// The pipeline has no test stage: say so in the history.
		if v, err = e.r.Registry.SetStatus(ctx, v.Ref(), kiln.StatusTested, fmt.Sprintf("pipeline %s has no test stage", e.p.Name)); err != nil {
			return err
		}
	}
	if v.Status != kiln.StatusTested {
		return kiln.Errorf(kiln.ECONFLICT, "%s is %s; only a tested version can become ready", v.Name, v.Status)
	}
	names := make([]string, 0, len(e.run.Stages))
	for _, s := range e.run.Stages {
		if s.Kind != kiln.StageDeliver {
			names = append(names, s.Name)
		}
	}
	if e.ver, err = e.r.Store.MarkReady(ctx, v.Ref(), fmt.Sprintf("run %d: %s passed", e.run.ID, strings.Join(names, ", "))); err != nil {
		return err
	}
	e.log.printf("==> %s is ready", e.ver.Name)
	return nil
}

func (e *exec) deliver(ctx context.Context, env string) (kiln.StageStatus, string, error) {
	prev := ""
	for i, x := range e.p.Environments {
		if x.Name == env && i > 0 {
			prev = e.p.Environments[i-1].Name
		}
	}
	// An environment that runs the version already was skipped before
	// its gate (see Execute), so this only promotes.
	p, err := e.r.Store.Promote(ctx, e.ver.Ref(), env, prev, fmt.Sprintf("run %d", e.run.ID))
	if err != nil {
		return "", "", err
	}
	d := fmt.Sprintf("%s promoted to %s", e.ver.Name, env)
	if p.Previous != 0 {
		d += fmt.Sprintf(" (was %s-%d)", p.Image, p.Previous)
	}
	return kiln.StagePassed, d, nil
}

// cascade queues runs of the images built on this one when the run made a
// new ready version and their pipelines rebuild on base changes.
func (e *exec) cascade(ctx context.Context) error {
	if e.ver == nil || !e.made || e.ver.Status != kiln.StatusReady || e.est == nil {
		return nil
	}
	for _, name := range e.est.Order {
		img := e.est.Images[name]
		if img.Base == nil || img.Base.Image != e.run.Image || img.Base.Number != 0 {
			continue
		}
		if !contains(e.est.PipelineFor(name).On, "base") {
			continue
		}
		nr := &kiln.NewRun{Image: name, Estate: e.est.Dir, Vars: e.run.Vars, Trigger: fmt.Sprintf("base %s is ready", e.ver.Name),
			Stages: StagesFor(e.est.PipelineFor(name))}
		run, coalesced, err := e.r.Store.EnqueueRun(ctx, nr)
		if err != nil {
			return fmt.Errorf("queue the rebuild of %s on %s: %w", name, e.ver.Name, err)
		}
		if coalesced {
			e.log.printf("==> %s: its queued run %d will build on %s", name, run.ID, e.ver.Name)
		} else {
			e.log.printf("==> %s: queued run %d to build on %s", name, run.ID, e.ver.Name)
		}
	}
	return nil
}

// debianOf returns the Debian archive an image's packages come from: its
// own debian block or its base's.
func debianOf(est *definition.Estate, img *definition.Image) *definition.Debian {
	for i := 0; img != nil && i < 64; i++ {
		if img.Debian != nil {
			return img.Debian
		}
		if img.Base == nil {
			return nil
		}
		img = est.Images[img.Base.Image]
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

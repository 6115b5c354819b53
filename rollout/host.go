package rollout

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"sync"

	"github.com/kiln-project/kiln"
)

// Host is kiln.RolloutStarter and kiln.ServiceHost on this machine: it
// starts front ends, runs rollouts with Engine and removes services. The
// local CLI runs rollouts in its own process (StartRollout returns when
// the rollout ended, progress on Engine.Progress); kiln serve calls
// Background first, so rollouts run in goroutines that end with the
// server and keep their progress lines for RolloutProgress.
type Host struct {
	Engine *Engine
	// Channels gives the default target (the environment's channel
	// version); nil: the latest ready version.
	Channels kiln.ChannelStore
	// DataDir holds the front ends' locks and logs.
	DataDir string
	// FrontEnd is the command line and environment of a service's
	// front-end process (`kiln __service-proxy NAME`).
	FrontEnd func(service string) (argv, env []string)

	bg *background
}

var (
	_ kiln.RolloutStarter = (*Host)(nil)
	_ kiln.ServiceHost    = (*Host)(nil)
)

// Progress lines kept per rollout, and rollouts kept, by a background host.
const (
	maxProgressLines = 10000
	maxProgressLogs  = 100
)

// background is the rollouts a Host runs in goroutines.
type background struct {
	ctx     context.Context
	wg      sync.WaitGroup
	mu      sync.Mutex
	running map[string]string // service → what holds it: "rollout 7 of web runs"
	logs    map[int64]*progressLog
	order   []int64 // rollout ids, oldest first, for forgetting logs
}

// progressLog keeps one rollout's progress lines; it is the Engine's
// Progress writer for that rollout.
type progressLog struct {
	mu      sync.Mutex
	lines   []string
	partial []byte
	running bool
	err     error
}

func (l *progressLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		if len(l.lines) < maxProgressLines {
			l.lines = append(l.lines, string(l.partial[:i]))
		}
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

// Background makes StartRollout return once a rollout is recorded and run
// it in a goroutine under ctx: when ctx ends, each rollout stops at its
// next step, destroys the instances it was launching and stays recorded
// as running (or rolling back) for `kiln rollout SERVICE --resume`. The
// returned function waits until every rollout and service removal begun
// before ctx ended has returned, including one still starting.
func (h *Host) Background(ctx context.Context) (wait func()) {
	h.bg = &background{ctx: ctx, running: map[string]string{}, logs: map[int64]*progressLog{}}
	return h.bg.wg.Wait
}

// StartRollout implements kiln.RolloutStarter.
func (h *Host) StartRollout(ctx context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
	if req.Resume && !req.To.IsZero() {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "to", "a resumed rollout goes on to the version it was started with; give --to or --resume, not both")
	}
	svc, err := h.Engine.Services.FindService(ctx, req.Service)
	if err != nil {
		return nil, err
	}
	e := *h.Engine
	if e.FrontEndRunning == nil {
		e.FrontEndRunning = h.FrontEndRunning
	}
	var log *progressLog
	if h.bg != nil {
		if err := h.bg.claim(svc.Name, "a rollout of "+svc.Name+" is starting"); err != nil {
			return nil, err
		}
		log = &progressLog{running: true}
		e.Progress = log
	}
	r, err := h.begin(ctx, &e, svc, req)
	if err != nil {
		if h.bg != nil {
			h.bg.release(svc.Name)
		}
		return nil, err
	}
	if h.bg == nil {
		return e.Continue(ctx, r)
	}
	started := *r
	h.bg.keep(svc.Name, r.ID, log)
	// The rollout belongs to the server, not to the request: it runs under
	// the server's context, as the actor who asked.
	rctx := kiln.WithSource(kiln.WithActor(h.bg.ctx, kiln.ActorFrom(ctx)), kiln.SourceFrom(ctx))
	go func() {
		defer h.bg.release(svc.Name)
		end, err := e.Continue(rctx, r)
		switch {
		case err != nil && h.bg.ctx.Err() != nil && (end == nil || !end.State.Done()):
			// The server stops: the rollout is interrupted, not failed;
			// its follower says to resume it.
			e.log().Info("rollout interrupted: the server stops; resume it with `kiln rollout SERVICE --resume`", "rollout", r.ID, "service", svc.Name, "err", err)
			err = nil
		case kiln.ErrorCode(err) == kiln.EINTERNAL:
			// Viewers read it: the details (paths, driver errors) stay
			// in the server's log, as the API's own internal errors do.
			e.log().Error("rollout stopped by an internal error", "rollout", r.ID, "service", svc.Name, "err", err)
			err = kiln.Errorf(kiln.EINTERNAL, "internal error; the server log has the details")
		case err != nil:
			e.log().Warn("rollout stopped", "rollout", r.ID, "service", svc.Name, "err", err)
		}
		log.mu.Lock()
		log.running, log.err = false, err
		log.mu.Unlock()
	}()
	return &started, nil
}

// begin starts the front end and records the rollout (or finds the one to
// resume), saying which version was chosen when none was asked for.
func (h *Host) begin(ctx context.Context, e *Engine, svc *kiln.Service, req kiln.RolloutRequest) (*kiln.Rollout, error) {
	if err := h.StartFrontEnd(ctx, svc.Name); err != nil {
		return nil, err
	}
	if req.Resume {
		r, err := e.Rollouts.ActiveRollout(ctx, svc.Name)
		if err != nil {
			return nil, err
		}
		// Refused here, before anything runs, while another process
		// (a second server, a local `kiln rollout --resume`) runs it.
		if err := e.acquire(ctx, r); err != nil {
			return nil, err
		}
		e.say("==> resuming rollout %d of %s (%s, %d batches done)", r.ID, svc.Name, r.State, r.Batch)
		return r, nil
	}
	to := req.To
	if to.IsZero() {
		v, why, err := Target(ctx, e.Registry, h.Channels, svc)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "to", "%s has no ready version and %s has no channel version; give --to %s-N", svc.Image, svc.Environment, svc.Image)
		}
		to = v.Ref()
		e.say("rolling out %s (%s)", to, why)
	}
	return e.Begin(ctx, svc.Name, to, Options{AllowUnready: req.AllowUnready})
}

// claim makes this server the one changing service (a rollout or a
// removal, what says which) until release; a second claim is refused.
func (b *background) claim(service, what string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.ctx.Err(); err != nil {
		return kiln.Errorf(kiln.EUNAVAILABLE, "the kiln server is stopping; nothing was done to %s: try again when it is back", service)
	}
	if held, ok := b.running[service]; ok {
		return kiln.Errorf(kiln.ECONFLICT, "%s on this server; wait for it to end (`kiln service show %s`)", held, service)
	}
	b.running[service] = what
	// Counted from here, not from the goroutine's start: the server's
	// shutdown waits for a rollout still starting its front end too.
	b.wg.Add(1)
	return nil
}

func (b *background) release(service string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.running, service)
	b.wg.Done()
}

func (b *background) keep(service string, id int64, log *progressLog) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.running[service] = fmt.Sprintf("rollout %d of %s runs", id, service)
	b.logs[id] = log
	b.order = append(b.order, id)
	for len(b.order) > maxProgressLogs {
		if old := b.logs[b.order[0]]; old != nil {
			old.mu.Lock()
			done := !old.running
			old.mu.Unlock()
			if !done {
				break
			}
		}
		delete(b.logs, b.order[0])
		b.order = b.order[1:]
	}
}

// RolloutProgress implements kiln.RolloutStarter: the rollout as recorded,
// with the progress lines this host keeps for it (none for a rollout run
// by another process).
func (h *Host) RolloutProgress(ctx context.Context, id int64, after int) (*kiln.RolloutProgress, error) {
	r, err := h.Engine.Rollouts.FindRollout(ctx, id)
	if err != nil {
		return nil, err
	}
	p := &kiln.RolloutProgress{Rollout: r, Lines: []string{}, Next: after}
	if h.bg == nil {
		return p, nil
	}
	h.bg.mu.Lock()
	log := h.bg.logs[id]
	h.bg.mu.Unlock()
	if log == nil {
		return p, nil
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if after < len(log.lines) {
		p.Lines = append(p.Lines, log.lines[max(after, 0):]...)
	}
	p.Next = max(after, len(log.lines))
	p.Running = log.running
	if log.err != nil {
		p.Code, p.Error = kiln.ErrorCode(log.err), kiln.ErrorMessage(log.err)
	}
	// Read after the log: a rollout that ended is seen in its final state.
	if !log.running {
		if r, err = h.Engine.Rollouts.FindRollout(ctx, id); err != nil {
			return nil, err
		}
		p.Rollout = r
	}
	return p, nil
}

// StartFrontEnd implements kiln.ServiceHost.
func (h *Host) StartFrontEnd(ctx context.Context, service string) error {
	svc, err := h.Engine.Services.FindService(ctx, service)
	if err != nil {
		return err
	}
	argv, env := h.FrontEnd(svc.Name)
	return StartFrontEnd(ctx, h.DataDir, svc.Name, svc.Listen, argv, env)
}

// StopFrontEnd implements kiln.ServiceHost. The service need not exist any
// more (a front end left behind by a deletion is stopped too).
func (h *Host) StopFrontEnd(ctx context.Context, service string) error {
	if err := checkServiceName(service); err != nil {
		return err
	}
	return StopFrontEnd(ctx, h.DataDir, service)
}

// FrontEndRunning implements kiln.ServiceHost.
func (h *Host) FrontEndRunning(_ context.Context, service string) (bool, error) {
	if err := checkServiceName(service); err != nil {
		return false, err
	}
	return FrontEndRunning(h.DataDir, service), nil
}

// serviceName is kiln.Service's name rule; the name becomes a file name
// under DataDir/services, so nothing else may reach the file system.
var serviceName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

func checkServiceName(service string) error {
	if !serviceName.MatchString(service) {
		return kiln.FieldErrorf(kiln.EINVALID, "service", "%q is not a service name; names are 1–63 lowercase letters, digits and dashes, starting with a letter", service)
	}
	return nil
}

// RemoveService implements kiln.ServiceHost. Each instance is destroyed
// before it is forgotten, so an interrupted removal leaves no instance
// that no record names.
func (h *Host) RemoveService(ctx context.Context, service string, destroyInstances bool) ([]string, error) {
	svc, err := h.Engine.Services.FindService(ctx, service)
	if err != nil {
		return nil, err
	}
	// No rollout of the service may start while it is removed.
	if h.bg != nil {
		if err := h.bg.claim(svc.Name, svc.Name+" is being deleted"); err != nil {
			return nil, err
		}
		defer h.bg.release(svc.Name)
	}
	// Nor may an interrupted one be left without its service: its members
	// and instances are the rollout's to finish or roll back.
	if r, err := h.Engine.Rollouts.ActiveRollout(ctx, svc.Name); err == nil {
		return nil, kiln.Errorf(kiln.ECONFLICT, "rollout %d of %s was interrupted (%s, %d batches done); resume it with `kiln rollout %s --resume` and let it end, then delete the service",
			r.ID, svc.Name, r.State, r.Batch, svc.Name)
	} else if kiln.ErrorCode(err) != kiln.ENOTFOUND {
		return nil, err
	}
	var destroyed []string
	if destroyInstances {
		ms, err := h.Engine.Services.ListMembers(ctx, svc.Name)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if err := h.Engine.destroy(ctx, svc, m, "service "+svc.Name+" deleted"); err != nil {
				return destroyed, err
			}
			destroyed = append(destroyed, m.InstanceID)
		}
	}
	if err := h.Engine.Services.DeleteService(ctx, svc.Name); err != nil {
		return destroyed, err
	}
	return destroyed, StopFrontEnd(ctx, h.DataDir, svc.Name)
}

package rollout

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/flock"
)

// FrontEnd runs a service's proxy for as long as ctx lives: it listens on
// the service's loopback address, takes its backend set from the store
// (the active members), and reports the generation it serves and its
// request counters after each change and every second.
type FrontEnd struct {
	Services kiln.ServiceStore
	Service  string
	Logger   *slog.Logger
	// Poll is how often the store is read; 0 means 100 ms.
	Poll time.Duration
	// Listener overrides listening on the service's address (tests).
	Listener net.Listener
	// MetricsListener overrides listening on the service's metrics
	// address (tests); without either, /metrics is served nowhere.
	MetricsListener net.Listener
	// Ready, when set, is called once the front end listens.
	Ready func()
}

// Run serves until ctx ends, then shuts down gracefully.
func (f *FrontEnd) Run(ctx context.Context) error {
	log := f.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("service", f.Service)
	poll := f.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	svc, err := f.Services.FindService(ctx, f.Service)
	if err != nil {
		return err
	}
	ln := f.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", svc.Listen); err != nil {
			return fmt.Errorf("the front end of %s cannot listen: %w", f.Service, listenError(svc.Listen, err))
		}
	}
	mln := f.MetricsListener
	if mln == nil && svc.MetricsListen != "" {
		if mln, err = net.Listen("tcp", svc.MetricsListen); err != nil {
			ln.Close()
			return fmt.Errorf("the front end of %s cannot serve /metrics: %w", f.Service, listenError(svc.MetricsListen, err))
		}
	}
	if f.Ready != nil {
		f.Ready()
	}
	p := NewProxy(log)
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("front end listening", "addr", ln.Addr().String())
	var applied atomic.Int64
	applied.Store(-1)
	if mln != nil {
		msrv := &http.Server{Handler: Metrics(f.Service, p, applied.Load), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		go func() { errc <- msrv.Serve(mln) }()
		defer msrv.Close()
		log.Info("front end serving /metrics", "addr", mln.Addr().String())
	}

	lastReport := time.Time{}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if err := f.sync(ctx, p, &applied, &lastReport); err != nil && ctx.Err() == nil {
			log.Warn("front end: reading the backend set failed; keeping the current one", "err", err)
		}
		select {
		case <-ctx.Done():
			shut, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return srv.Shutdown(shut)
		case err := <-errc:
			return fmt.Errorf("front end of %s: %w", f.Service, err)
		case <-tick.C:
		}
	}
}

func (f *FrontEnd) sync(ctx context.Context, p *Proxy, applied *atomic.Int64, lastReport *time.Time) error {
	// The generation first, then the members: the set read is at least as
	// new as the generation reported.
	svc, err := f.Services.FindService(ctx, f.Service)
	if err != nil {
		return err
	}
	changed := svc.Generation != applied.Load()
	if changed {
		ms, err := f.Services.ListMembers(ctx, f.Service)
		if err != nil {
			return err
		}
		var addrs []string
		for _, m := range ms {
			if m.State == kiln.MemberActive && m.Address != "" {
				addrs = append(addrs, m.Address)
			}
		}
		drainCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err = p.SetBackends(drainCtx, addrs)
		cancel()
		if err != nil {
			return fmt.Errorf("drain: %w", err)
		}
		applied.Store(svc.Generation)
	}
	if !changed && time.Since(*lastReport) < time.Second {
		return nil
	}
	req, errs := p.Stats()
	st := &kiln.ProxyStatus{Service: f.Service, Generation: applied.Load(), Backends: len(p.Backends()), Requests: req, Errors: errs, PID: os.Getpid()}
	if err := f.Services.ReportProxy(ctx, st); err != nil {
		return err
	}
	*lastReport = time.Now()
	return nil
}

// Supervised front ends: one detached process per service (`kiln
// __service-proxy NAME`), holding <DataDir>/services/NAME.lock for its
// whole life, logging to NAME.log, so the front end outlives the command
// that started it, and "is it running?" is answered by the lock.

func proxyPaths(dataDir, service string) (lock, logf, pid string) {
	d := filepath.Join(dataDir, "services")
	return filepath.Join(d, service+".lock"), filepath.Join(d, service+".log"), filepath.Join(d, service+".pid")
}

// LockFrontEnd takes the service's front-end lock for the calling process;
// nil, nil when another process holds it.
func LockFrontEnd(dataDir, service string) (*os.File, error) {
	f, err := tryLockFrontEnd(dataDir, service)
	if f != nil {
		_, _, pid := proxyPaths(dataDir, service)
		_ = os.WriteFile(pid, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	}
	return f, err
}

func tryLockFrontEnd(dataDir, service string) (*os.File, error) {
	lock, _, _ := proxyPaths(dataDir, service)
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock.TryLock(f, flock.Exclusive); err != nil {
		f.Close()
		if errors.Is(err, flock.ErrHeld) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

// FrontEndRunning reports whether a process holds the service's front-end lock.
func FrontEndRunning(dataDir, service string) bool {
	f, err := tryLockFrontEnd(dataDir, service)
	if err != nil || f == nil {
		return err == nil
	}
	f.Close()
	return false
}

// ReadyFDEnv names the variable that tells a front-end process started by
// StartFrontEnd which file descriptor is its readiness pipe: it writes
// "ready" there once it listens, or "error: MESSAGE" when it cannot.
const ReadyFDEnv = "KILN_FRONTEND_READY_FD"

// ReadyPipe returns the readiness pipe StartFrontEnd handed this process,
// or nil when it was started otherwise. Report on it with ReportReady.
func ReadyPipe() *os.File {
	fd, err := strconv.Atoi(os.Getenv(ReadyFDEnv))
	if err != nil || fd < 3 {
		return nil
	}
	return os.NewFile(uintptr(fd), "frontend-ready")
}

// ReportReady writes the outcome of a front end's start on pipe (nil:
// nothing to do) and closes it: "ready" for a nil err.
func ReportReady(pipe *os.File, err error) {
	if pipe == nil {
		return
	}
	msg := "ready\n"
	if err != nil {
		msg = "error: " + strings.ReplaceAll(kiln.ErrorMessage(err), "\n", " ") + "\n"
	}
	_, _ = pipe.WriteString(msg)
	_ = pipe.Close()
}

// startTimeout bounds the wait for a started front end to report.
const startTimeout = 15 * time.Second

// StartFrontEnd starts the supervised front end of a service unless one
// runs, and waits until it reports that it listens on listen. A port
// another process holds is refused before anything starts, naming the
// process when this machine tells. argv is the command that runs FrontEnd
// for the service (kiln's `__service-proxy NAME` with the global flags),
// env its environment (nil: this process's).
func StartFrontEnd(ctx context.Context, dataDir, service, listen string, argv, env []string) error {
	if FrontEndRunning(dataDir, service) {
		return nil
	}
	if err := CheckPortFree(listen); err != nil {
		return fmt.Errorf("the front end of %s cannot start: %w", service, err)
	}
	_, logPath, _ := proxyPaths(dataDir, service)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start front end of %s: %w", service, err)
	}
	defer logf.Close()
	ready, readyW, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("start front end of %s: %w", service, err)
	}
	defer ready.Close()
	if env == nil {
		env = os.Environ()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The pipe's write end is the child's fd 3.
	cmd.ExtraFiles = []*os.File{readyW}
	cmd.Env = append(append([]string(nil), env...), ReadyFDEnv+"=3")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = cmd.Start()
	readyW.Close() // the child has its copy: EOF means it exited
	if err != nil {
		return fmt.Errorf("start front end of %s: %w", service, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(ready).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		switch {
		case s == "ready":
			return nil
		case strings.HasPrefix(s, "error: "):
			return kiln.Errorf(kiln.ECONFLICT, "%s", strings.TrimPrefix(s, "error: "))
		}
		err := <-exited
		return kiln.Errorf(kiln.EUNAVAILABLE, "the front end of %s exited at start (%v); see %s", service, err, logPath)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(startTimeout):
		return kiln.Errorf(kiln.EUNAVAILABLE, "the front end of %s did not report listening on %s within %s; see %s", service, listen, startTimeout, logPath)
	}
}

// StopFrontEnd ends a service's supervised front end (SIGTERM; it finishes
// the requests in flight) and waits until it has let go of its lock.
func StopFrontEnd(ctx context.Context, dataDir, service string) error {
	_, _, pidPath := proxyPaths(dataDir, service)
	if !FrontEndRunning(dataDir, service) {
		return nil
	}
	b, err := os.ReadFile(pidPath)
	if err != nil {
		return fmt.Errorf("stop front end of %s: %w", service, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return fmt.Errorf("stop front end of %s: bad pid file %s", service, pidPath)
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for FrontEndRunning(dataDir, service) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}

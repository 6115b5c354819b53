package local

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Signals the supervisor understands.
const (
	sigStop    = syscall.SIGTERM // shut the instance down in an orderly way
	sigDestroy = syscall.SIGUSR1 // kill the instance at once: its disk is about to go
)

// Timeouts of the supervisor.
const (
	leaderTimeout = 30 * time.Second // systemd-nspawn start to the instance's init running
	stopTimeout   = 15 * time.Second // orderly shutdown before the instance is killed
	killTimeout   = 5 * time.Second  // a killed instance's processes to be gone
)

// SupervisorMain is the entry point of an instance's supervisor process,
// which kiln starts by re-executing itself (cmd/kiln wires it as the hidden
// command `kiln __supervise`; Config.Supervisor says how to call it). args
// are the arguments after the command name. It expects the instance's locked
// supervisor.lock as file descriptor 3 and a pipe to report readiness on as
// descriptor 4, and returns the process's exit status.
func SupervisorMain(args []string) int {
	fs := flag.NewFlagSet("__supervise", flag.ContinueOnError)
	dir := fs.String("dir", "", "instance directory")
	if err := fs.Parse(args); err != nil || *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: __supervise --dir INSTANCE_DIR (started by kiln, not by hand)")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("instance_dir", *dir)
	// Neither may leak into systemd-nspawn: the lock would outlive us in an
	// orphaned nspawn, and the launcher would never see the pipe's EOF.
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	lock := os.NewFile(3, lockFile)
	ready := os.NewFile(4, "ready")
	if lock == nil || ready == nil {
		log.Error("supervisor started without its lock and ready descriptors")
		return 2
	}
	s := &supervisor{dir: *dir, log: log, ready: ready}
	err := s.run()
	lock.Close()
	if err != nil {
		log.Error("supervisor", "err", err)
		return 1
	}
	return 0
}

type supervisor struct {
	dir   string
	log   *slog.Logger
	ready *os.File
	rec   *record

	fwds  []*forwarder
	egs   []*egress
	ns    netns.NsHandle
	nsOK  bool
	mount bool
}

// run sets the instance up, reports readiness, waits for the end and cleans
// up. A failure before readiness is reported on the ready pipe.
func (s *supervisor) run() error {
	rec, err := readRecord(s.dir)
	if err != nil {
		s.fail(err)
		return err
	}
	s.rec = rec
	rec.SupervisorPID = os.Getpid()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, sigStop, sigDestroy, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	// An instance's init whose nspawn died is re-parented to us, so that we
	// can kill and reap it.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.log.Warn("cannot become subreaper", "err", err)
	}

	cmd, exited, err := s.start()
	if err != nil {
		s.cleanup()
		s.rec.State = kiln.InstanceCrashed
		s.rec.Reason = err.Error()
		s.rec.EndedAt = time.Now().UTC()
		_ = writeRecord(s.dir, s.rec)
		s.fail(err)
		return err
	}
	instancedir.ReportReady(s.ready)

	var asked os.Signal
	var waitErr error
	var timeout <-chan time.Time
loop:
	for {
		select {
		case sig := <-sigs:
			s.log.Info("signal", "signal", sig.String())
			if sig == sigDestroy {
				asked = sig
				s.killInstance()
				timeout = time.After(killTimeout)
			} else if asked == nil {
				asked = sig
				_ = cmd.Process.Signal(syscall.SIGTERM) // nspawn asks systemd to halt
				timeout = time.After(stopTimeout)
			}
		case <-timeout:
			s.log.Warn("instance did not end in time; killing it")
			s.killInstance()
			_ = cmd.Process.Kill()
			timeout = nil
		case waitErr = <-exited:
			break loop
		}
	}

	// nspawn is gone; its init may not be (nspawn was killed).
	killProcess(rec.LeaderPID, rec.LeaderStart, syscall.SIGKILL)
	if !waitGone(rec.LeaderPID, rec.LeaderStart, killTimeout, true) {
		s.log.Error("instance init survived SIGKILL", "pid", rec.LeaderPID)
	}
	killOrphans()
	s.cleanup()
	rec.EndedAt = time.Now().UTC()
	switch {
	case asked != nil:
		rec.State = kiln.InstanceStopped
		rec.Reason = "stopped by kiln"
	default:
		rec.State = kiln.InstanceCrashed
		rec.Reason = "systemd-nspawn ended without kiln asking: " + exitText(waitErr)
	}
	s.log.Info("instance ended", "state", rec.State, "reason", rec.Reason)
	return writeRecord(s.dir, rec)
}

// start binds the forwards, creates the network namespace and overlay, and
// starts systemd-nspawn; it returns the nspawn command and a channel that
// yields its Wait result.
func (s *supervisor) start() (*exec.Cmd, <-chan error, error) {
	r := s.rec
	// Bind first: a port in use fails the launch before anything boots.
	bound := make([]kiln.PortForward, 0, len(r.Ports))
	for _, pf := range r.Ports {
		ln, err := net.Listen("tcp", pf.Host)
		if err != nil {
			return nil, nil, kiln.Errorf(kiln.ECONFLICT, "cannot forward %s to port %d of the instance: %v; choose another host port or 0 for a free one", pf.Host, pf.Guest, err)
		}
		s.fwds = append(s.fwds, &forwarder{ln: ln, guest: pf.Guest, log: s.log})
		bound = append(bound, kiln.PortForward{Host: ln.Addr().String(), Guest: pf.Guest})
	}
	r.Ports = bound

	if err := createNetns(r.Netns); err != nil {
		return nil, nil, err
	}
	s.nsOK = true
	ns, err := netns.GetFromPath(filepath.Join(netnsDir, r.Netns))
	if err != nil {
		return nil, nil, fmt.Errorf("open network namespace: %w", err)
	}
	s.ns = ns
	// Egress listens inside before the instance boots, so that its agent
	// finds the address there from its first try.
	for _, addr := range r.Egress {
		ln, err := listenIn(ns, addr)
		if err != nil {
			return nil, nil, fmt.Errorf("egress to %s: listen inside the instance: %w", addr, err)
		}
		s.egs = append(s.egs, &egress{ln: ln, host: addr, log: s.log})
	}

	// The image's tree stays read-only below; the instance's writes land
	// in upper, which is what drift detection compares.
	merged := filepath.Join(s.dir, mergedDir)
	ov := &overlayfs.Overlay{Lowers: r.lowerDirs(), Upper: filepath.Join(s.dir, upperDir), Work: filepath.Join(s.dir, workDir), Target: merged}
	if err := ov.Mount(); err != nil {
		return nil, nil, err
	}
	s.mount = true

	console, err := os.OpenFile(filepath.Join(s.dir, consoleFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer console.Close()
	cmd := exec.Command("systemd-nspawn", nspawnArgs(r, merged)...)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	exited := make(chan error, 1)
	exitedSig := make(chan struct{})
	go func() {
		err := cmd.Wait()
		close(exitedSig)
		exited <- err
	}()
	st, err := instancedir.ReadProcStat(cmd.Process.Pid)
	if err == nil {
		r.NspawnStart = st.Start
	}
	r.NspawnPID = cmd.Process.Pid

	leader, start, err := findLeader(cmd.Process.Pid, exitedSig, leaderTimeout)
	if err != nil {
		_ = cmd.Process.Kill()
		<-exitedSig
		killOrphans() // its init may be running anyway, orphaned to us
		return nil, nil, fmt.Errorf("boot instance: %w; console: %s", err, instancedir.Tail(filepath.Join(s.dir, consoleFile), 2048))
	}
	r.LeaderPID, r.LeaderStart = leader, start
	// systemd-nspawn read the credentials before it started the init:
	// the host keeps no copy of the configuration (secrets included).
	if err := os.RemoveAll(filepath.Join(s.dir, credentialsDir)); err != nil {
		s.log.Warn("remove delivered credentials", "err", err)
	}
	r.State = kiln.InstanceRunning
	if err := writeRecord(s.dir, r); err != nil {
		_ = cmd.Process.Kill()
		<-exitedSig
		killProcess(leader, start, syscall.SIGKILL)
		waitGone(leader, start, killTimeout, true)
		return nil, nil, err
	}
	for _, f := range s.fwds {
		f.ns = ns
		go f.serve()
	}
	for _, e := range s.egs {
		go e.serve()
	}
	return cmd, exited, nil
}

// killInstance kills the instance's init, which takes every process of its
// PID namespace along; nspawn then exits by itself.
func (s *supervisor) killInstance() {
	killProcess(s.rec.LeaderPID, s.rec.LeaderStart, syscall.SIGKILL)
}

// cleanup undoes start in reverse order; it is safe to call on a partial
// start.
func (s *supervisor) cleanup() {
	for _, f := range s.fwds {
		f.close()
	}
	s.fwds = nil
	for _, e := range s.egs {
		e.close()
	}
	s.egs = nil
	if s.mount {
		if err := overlayfs.UnmountAll(filepath.Join(s.dir, mergedDir)); err != nil {
			s.log.Error("cleanup", "err", err)
		}
		s.mount = false
	}
	if s.ns.IsOpen() {
		s.ns.Close()
	}
	if s.nsOK {
		if err := deleteNetns(s.rec.Netns); err != nil {
			s.log.Error("cleanup", "err", err)
		}
		s.nsOK = false
	}
	removePropagateDir(s.rec.Machine)
}

// killOrphans kills and reaps whatever children the supervisor has left:
// once nspawn is gone they can only be an instance's orphaned processes.
func killOrphans() {
	kids, _ := childrenOf(os.Getpid())
	for _, pid := range kids {
		if st, err := instancedir.ReadProcStat(pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(pid, st.Start, killTimeout, true)
		}
	}
	reapChildren()
}

// fail reports a start failure to the launcher.
func (s *supervisor) fail(err error) { instancedir.ReportFailure(s.ready, err) }

// removePropagateDir removes the directory nspawn keeps on the host for
// mount propagation into the machine, when nspawn left it behind.
func removePropagateDir(machine string) {
	if machine != "" {
		_ = os.Remove(filepath.Join("/run/systemd/nspawn/propagate", machine))
	}
}

func exitText(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return "exit status " + strconv.Itoa(ee.ExitCode())
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

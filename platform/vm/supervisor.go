package vm

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"golang.org/x/sys/unix"
)

// Signals the supervisor understands.
const (
	sigStop    = syscall.SIGTERM // power the guest down in an orderly way
	sigDestroy = syscall.SIGUSR1 // kill QEMU at once: the disk is about to go
)

// Timeouts of the supervisor.
const (
	connectTimeout = 15 * time.Second // QEMU start to its agent port connecting
	stopTimeout    = 30 * time.Second // ACPI power-down before QEMU is killed (TCG shuts down slowly)
	killTimeout    = 5 * time.Second
)

// SupervisorMain is the entry point of a VM instance's supervisor, which
// kiln starts by re-executing itself (cmd/kiln wires it as the hidden
// command `kiln __vm-supervise`; Config.Supervisor says how to call it).
// It owns the instance's QEMU (which dies with it: PR_SET_PDEATHSIG) and
// the exec socket. It expects the locked supervisor.lock as descriptor 3
// and a pipe to report readiness on as descriptor 4, and returns the
// process's exit status.
func SupervisorMain(args []string) int {
	if len(args) == 2 && args[0] == egressRelayFlag {
		return relayMain(args[1]) // QEMU's guest forward, per connection (egress.go)
	}
	fs := flag.NewFlagSet("__vm-supervise", flag.ContinueOnError)
	dir := fs.String("dir", "", "instance directory")
	firmware := fs.String("firmware", "", "UEFI firmware")
	mem := fs.Int("memory", 1024, "guest memory in MiB")
	cpus := fs.Int("cpus", 1, "guest CPUs")
	qemu := fs.String("qemu", "qemu-system-x86_64", "QEMU binary")
	if err := fs.Parse(args); err != nil || *dir == "" || *firmware == "" {
		fmt.Fprintln(os.Stderr, "usage: __vm-supervise --dir INSTANCE_DIR --firmware FILE (started by kiln, not by hand)")
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("instance_dir", *dir)
	unix.CloseOnExec(3)
	unix.CloseOnExec(4)
	lock := os.NewFile(3, lockFile)
	ready := os.NewFile(4, "ready")
	if lock == nil || ready == nil {
		log.Error("supervisor started without its lock and ready descriptors")
		return 2
	}
	// QEMU's parent-death signal fires when the thread that started it
	// ends: keep this goroutine on its thread for the process's life.
	runtime.LockOSThread()
	s := &supervisor{dir: *dir, log: log, ready: ready, firmware: *firmware, mem: *mem, cpus: *cpus, qemu: *qemu}
	err := s.run()
	lock.Close()
	if err != nil {
		log.Error("supervisor", "err", err)
		return 1
	}
	return 0
}

type supervisor struct {
	dir      string
	log      *slog.Logger
	ready    *os.File
	rec      *record
	firmware string
	mem      int
	cpus     int
	qemu     string

	agentLn, execLn net.Listener
	mux             *mux
}

func (s *supervisor) run() error {
	rec, err := readRecord(s.dir)
	if err != nil {
		s.fail(err)
		return err
	}
	s.rec = rec
	rec.SupervisorPID = os.Getpid()
	if err := os.Chdir(s.dir); err != nil {
		s.fail(err)
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, sigStop, sigDestroy, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)

	cmd, exited, err := s.start(sigs)
	if err != nil {
		s.cleanup()
		rec.State = kiln.InstanceCrashed
		rec.Reason = kiln.ErrorMessage(err)
		rec.EndedAt = time.Now().UTC()
		_ = writeRecord(s.dir, rec)
		s.fail(err)
		return err
	}
	// QEMU reads the fw_cfg files while it creates the machine, after it
	// connected the agent's socket; once its monitor answers, the machine
	// exists and the host copy of the launch configuration goes (Launch
	// removes it too once the boot ended, whatever happened).
	if len(rec.Credentials) > 0 {
		deadline := time.Now().Add(connectTimeout)
		for qmp(qmpSocket, "query-status") != nil && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if err := instancedir.RemoveCredentials(s.dir); err != nil {
			s.log.Warn("remove the delivered credentials", "err", err)
		}
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
				_ = cmd.Process.Kill()
				timeout = time.After(killTimeout)
			} else if asked == nil {
				asked = sig
				s.powerdown()
				timeout = time.After(stopTimeout)
			}
		case <-timeout:
			s.log.Warn("virtual machine did not end in time; killing QEMU")
			_ = cmd.Process.Kill()
			timeout = nil
		case waitErr = <-exited:
			break loop
		}
	}
	s.cleanup()
	rec.EndedAt = time.Now().UTC()
	switch {
	case asked != nil:
		rec.State = kiln.InstanceStopped
		rec.Reason = "stopped by kiln"
	case waitErr == nil:
		// -no-reboot: a guest that powers off or reboots ends QEMU cleanly.
		rec.State = kiln.InstanceStopped
		rec.Reason = "the guest powered off (or rebooted) by itself"
	default:
		rec.State = kiln.InstanceCrashed
		rec.Reason = "QEMU ended without kiln asking: " + exitText(waitErr)
		if l := lastLines(consoleFile, 5); l != "" {
			rec.Reason += "; console: " + l
		}
	}
	s.log.Info("instance ended", "state", rec.State, "reason", rec.Reason)
	return writeRecord(s.dir, rec)
}

// start chooses the host ports, listens for QEMU's agent port and kiln's
// commands, starts QEMU and waits for its agent port to connect.
func (s *supervisor) start(sigs <-chan os.Signal) (*exec.Cmd, <-chan error, error) {
	r := s.rec
	// A host port 0 becomes a free one now; QEMU binds it a moment later.
	bound := make([]kiln.PortForward, 0, len(r.Ports))
	for _, pf := range r.Ports {
		ln, err := net.Listen("tcp4", pf.Host)
		if err != nil {
			return nil, nil, kiln.Errorf(kiln.ECONFLICT, "cannot forward %s to port %d of the instance: %v; choose another host port or 0 for a free one", pf.Host, pf.Guest, err)
		}
		bound = append(bound, kiln.PortForward{Host: ln.Addr().String(), Guest: pf.Guest})
		ln.Close()
	}
	r.Ports = bound

	for _, f := range []string{agentSocket, execSocket, qmpSocket} {
		_ = os.Remove(f)
	}
	var err error
	if s.agentLn, err = net.Listen("unix", agentSocket); err != nil {
		return nil, nil, err
	}
	if s.execLn, err = net.Listen("unix", execSocket); err != nil {
		return nil, nil, err
	}

	qlog, err := os.OpenFile("qemu.log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer qlog.Close()
	// QEMU starts this same binary as the egress relay (egress.go).
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	args, err := qemuArgs(s.dir, r, s.firmware, s.mem, s.cpus, []string{exe, os.Args[1]})
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.Command(s.qemu, args...)
	cmd.Stdout, cmd.Stderr = qlog, qlog
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start QEMU: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	r.QemuPID = cmd.Process.Pid
	r.QemuStart, _ = instancedir.ProcStart(cmd.Process.Pid)

	conn := make(chan net.Conn, 1)
	go func() {
		c, err := s.agentLn.Accept()
		if err == nil {
			conn <- c
		}
	}()
	var agent net.Conn
	select {
	case agent = <-conn:
	case err := <-exited:
		return nil, nil, kiln.Errorf(kiln.EUNAVAILABLE, "QEMU ended at once (%s): %s", exitText(err), strings.TrimSpace(instancedir.Tail("qemu.log", 2048)))
	case sig := <-sigs:
		_ = cmd.Process.Kill()
		s.log.Debug("QEMU ended", "err", <-exited)
		return nil, nil, kiln.Errorf(kiln.EUNAVAILABLE, "launch abandoned (%s) before QEMU connected its agent port", sig)
	case <-time.After(connectTimeout):
		_ = cmd.Process.Kill()
		s.log.Debug("QEMU ended", "err", <-exited)
		return nil, nil, kiln.Errorf(kiln.EUNAVAILABLE, "QEMU did not connect the agent port within %s: %s", connectTimeout, strings.TrimSpace(instancedir.Tail("qemu.log", 2048)))
	}
	s.agentLn.Close()
	s.mux = newMux(agent, s.log)
	stop := make(chan struct{})
	go func() {
		s.mux.run()
		close(stop)
	}()
	go s.mux.greet(stop)
	go func() {
		for {
			c, err := s.execLn.Accept()
			if err != nil {
				return
			}
			go s.mux.serveClient(c)
		}
	}()

	r.State = kiln.InstanceRunning
	if err := writeRecord(s.dir, r); err != nil {
		_ = cmd.Process.Kill()
		s.log.Debug("QEMU ended", "err", <-exited)
		return nil, nil, err
	}
	// exited is read by run from now on.
	return cmd, exited, nil
}

// powerdown asks the guest to shut down: the ACPI power button (what a
// hypervisor's "shut down" does) and, since a minimal image may have
// nothing that handles it, systemctl poweroff through the agent.
func (s *supervisor) powerdown() {
	if err := qmp(qmpSocket, "system_powerdown"); err != nil {
		s.log.Warn("ACPI power-down", "err", err)
	}
	if s.mux != nil {
		if _, err := s.mux.open([]string{"systemctl", "poweroff", "--no-block"}, nil); err != nil {
			s.log.Warn("poweroff through the agent", "err", err)
		}
	}
}

func (s *supervisor) cleanup() {
	if s.execLn != nil {
		s.execLn.Close()
	}
	if s.agentLn != nil {
		s.agentLn.Close()
	}
	for _, f := range []string{agentSocket, execSocket, qmpSocket} {
		_ = os.Remove(f)
	}
	_ = instancedir.RemoveCredentials(s.dir)
}

func (s *supervisor) fail(err error) { instancedir.ReportFailure(s.ready, err) }

// qmp runs one QMP command on QEMU's monitor socket.
func qmp(path, command string) error {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r := bufio.NewReader(c)
	if _, err := r.ReadString('\n'); err != nil { // greeting
		return err
	}
	for _, cmd := range []string{"qmp_capabilities", command} {
		b, _ := json.Marshal(map[string]string{"execute": cmd})
		if _, err := c.Write(append(b, '\n')); err != nil {
			return err
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			var resp struct {
				Return json.RawMessage `json:"return"`
				Error  *struct {
					Desc string `json:"desc"`
				} `json:"error"`
			}
			if json.Unmarshal([]byte(line), &resp) != nil {
				continue
			}
			if resp.Error != nil {
				return fmt.Errorf("QMP %s: %s", cmd, resp.Error.Desc)
			}
			if resp.Return != nil {
				break
			}
			// an event: read on
		}
	}
	return nil
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

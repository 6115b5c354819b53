package vm

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kiln-project/kiln/platform/vm/disk"
	"github.com/kiln-project/kiln/verify"
)

// AgentMain is the guest agent: the kiln binary inside a virtual machine,
// run by the unit the disk builder installs (cmd/kiln wires it as the hidden
// command `kiln __vm-agent`). It serves the exec protocol on the
// virtio-serial port named disk.AgentPort: each command the host opens runs
// as root with a minimal environment, its streams carried as frames. It
// returns the process's exit status; on a machine without the port (a cloud)
// it returns 0 after a while, doing nothing.
func AgentMain(args []string) int {
	fs := flag.NewFlagSet(disk.AgentCommand, flag.ContinueOnError)
	port := fs.String("port", "", "the virtio-serial device (default: the port named "+disk.AgentPort+")")
	wait := fs.Duration("wait", 2*time.Minute, "how long to wait for the port to appear")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := linkProbe(); err != nil {
		log.Warn("server tests will not find kiln at "+verify.ProbePath, "err", err)
	}
	// The loopback addresses kiln declared (the agent's server), relayed
	// to the host (egress.go).
	guestEgress(context.Background(), log)
	dev := *port
	deadline := time.Now().Add(*wait)
	for dev == "" {
		dev = findPort(disk.AgentPort)
		if dev != "" {
			break
		}
		if time.Now().After(deadline) {
			log.Info("no kiln virtio-serial port on this machine; the agent has nothing to do", "port", disk.AgentPort)
			return 0
		}
		time.Sleep(200 * time.Millisecond)
	}
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		log.Error("open agent port", "dev", dev, "err", err)
		return 1
	}
	defer f.Close()
	a := &agent{fw: &frameWriter{w: f}, sessions: map[uint32]*session{}, log: log}
	go func() { _ = a.fw.write(frameHello, 0, nil) }() // blocks until the host connects
	log.Info("agent serving", "dev", dev)
	// serve returns only when the stream is out of step: exit, and let
	// systemd restart the agent, which says hello afresh.
	log.Error("agent", "err", a.serve(f))
	return 1
}

// linkProbe puts this kiln binary where the host runs server tests and
// read-only commands (verify.ProbePath, where the local platform
// bind-mounts its own): a symlink in /run, gone at the next boot.
func linkProbe() error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if cur, err := os.Readlink(verify.ProbePath); err == nil && cur == exe {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(verify.ProbePath), 0o755); err != nil {
		return err
	}
	tmp := verify.ProbePath + ".new"
	_ = os.Remove(tmp)
	if err := os.Symlink(exe, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, verify.ProbePath)
}

// findPort returns the /dev node of the virtio-serial port with the name.
func findPort(name string) string {
	ms, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
	for _, m := range ms {
		b, err := os.ReadFile(m)
		if err == nil && strings.TrimSpace(string(b)) == name {
			return "/dev/" + filepath.Base(filepath.Dir(m))
		}
	}
	return ""
}

type agent struct {
	fw       *frameWriter
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[uint32]*session
}

type session struct {
	cmd   *exec.Cmd
	stdin chan []byte   // an empty payload closes stdin
	done  chan struct{} // closed when the command has ended
}

// serve reads frames until the stream breaks. While no host is connected
// the port reads as end of file: wait for one.
func (a *agent) serve(r io.Reader) error {
	for {
		f, err := readFrame(r)
		if errors.Is(err, io.EOF) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
		switch f.typ {
		case frameHello:
			a.killAll()
			go func() { _ = a.fw.write(frameHello, 0, f.payload) }()
		case frameOpen:
			a.open(f.ch, f.payload)
		case frameStdin:
			a.mu.Lock()
			s := a.sessions[f.ch]
			a.mu.Unlock()
			if s != nil {
				select {
				case s.stdin <- f.payload:
				case <-s.done:
				}
			}
		case frameKill:
			a.mu.Lock()
			s := a.sessions[f.ch]
			a.mu.Unlock()
			if s != nil && s.cmd.Process != nil {
				_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			}
		}
	}
}

func (a *agent) killAll() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ch, s := range a.sessions {
		if s.cmd.Process != nil {
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		}
		delete(a.sessions, ch)
	}
}

// commandEnv is what a command inside the instance starts with, as on the
// local platform.
var commandEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8", "TERM=dumb",
}

func (a *agent) open(ch uint32, payload []byte) {
	var req openRequest
	if err := json.Unmarshal(payload, &req); err != nil || len(req.Argv) == 0 {
		_ = a.fw.write(frameError, ch, []byte("bad command request"))
		return
	}
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = commandEnv
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A daemon the command leaves behind may hold its output open: stop
	// waiting for that a little after the command itself ended.
	cmd.WaitDelay = 3 * time.Second
	cmd.Stdout = streamWriter{a.fw, frameStdout, ch}
	cmd.Stderr = streamWriter{a.fw, frameStderr, ch}
	stdin, err := cmd.StdinPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		// As a shell would: 127 for a missing command, 126 otherwise.
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		_ = a.fw.write(frameStderr, ch, []byte(fmt.Sprintf("kiln agent: %v\n", err)))
		_ = a.fw.write(frameExit, ch, []byte(strconv.Itoa(code)))
		return
	}
	s := &session{cmd: cmd, stdin: make(chan []byte, 64), done: make(chan struct{})}
	a.mu.Lock()
	a.sessions[ch] = s
	a.mu.Unlock()
	go func() {
		defer stdin.Close()
		for {
			select {
			case b := <-s.stdin:
				if len(b) == 0 {
					return
				}
				if _, err := stdin.Write(b); err != nil {
					return
				}
			case <-s.done:
				return
			}
		}
	}()
	go func() {
		err := cmd.Wait()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
		} else if err != nil && !errors.Is(err, exec.ErrWaitDelay) {
			code = 126
		}
		a.mu.Lock()
		delete(a.sessions, ch)
		a.mu.Unlock()
		close(s.done)
		_ = a.fw.write(frameExit, ch, []byte(strconv.Itoa(code)))
	}()
}

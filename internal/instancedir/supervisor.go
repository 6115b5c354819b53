package instancedir

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kiln-project/kiln"
)

// SupervisorEnv is the environment a supervisor starts with: PATH (a
// default when unset) and the locale and time zone.
func SupervisorEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path}
	for _, n := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(n); ok {
			env = append(env, n+"="+v)
		}
	}
	return env
}

// StartSupervisor starts argv detached from this process (its own
// session, output to dir's supervisor.log), hands it the locked
// supervisor.lock as descriptor 3 and a pipe as descriptor 4, writes its
// PID to supervisor.pid (Stop and Destroy need it before the supervisor
// records it), and waits until it reports readiness on the pipe: "ok", or
// a failure (ReportFailure).
func StartSupervisor(ctx context.Context, dir string, argv []string, lock *os.File) error {
	log, err := os.OpenFile(filepath.Join(dir, SupervisorLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{lock, readyW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	cmd.Env = SupervisorEnv()
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start supervisor: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, SupervisorPID), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("start supervisor: %w", err)
	}
	// Reap it if it ends while this process lives; otherwise init does.
	go func() { _ = cmd.Wait() }()
	msg := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(readyR).ReadString('\n')
		msg <- strings.TrimSpace(line)
	}()
	select {
	case m := <-msg:
		switch m {
		case "ok":
			return nil
		case "":
			return fmt.Errorf("supervisor exited without reporting; see %s", filepath.Join(dir, SupervisorLog))
		}
		return decodeFailure(m)
	case <-ctx.Done():
		readyR.Close()
		return ctx.Err()
	}
}

// ReportReady is the supervisor's side: the instance runs.
func ReportReady(ready io.WriteCloser) {
	fmt.Fprintln(ready, "ok")
	ready.Close()
}

// ReportFailure is the supervisor's side: err, with its kiln code, is why
// the instance did not start.
func ReportFailure(ready io.WriteCloser, err error) {
	fmt.Fprintln(ready, "error "+kiln.ErrorCode(err)+" "+strings.ReplaceAll(kiln.ErrorMessage(err), "\n", "\\n"))
	ready.Close()
}

func decodeFailure(line string) error {
	f := strings.SplitN(line, " ", 3)
	if len(f) != 3 || f[0] != "error" {
		return kiln.Errorf(kiln.EINTERNAL, "supervisor: %s", line)
	}
	return kiln.Errorf(f[1], "%s", strings.ReplaceAll(f[2], "\\n", "\n"))
}

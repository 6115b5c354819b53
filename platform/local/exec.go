package local

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// Exec runs argv inside the instance, in all its namespaces and as root,
// with a minimal environment. Cancelling ctx kills the command's process
// group.
func (p *Platform) Exec(ctx context.Context, id string, argv []string, stdio kiln.ExecIO) (int, error) {
	if len(argv) == 0 {
		return -1, kiln.FieldErrorf(kiln.EINVALID, "argv", "no command to run")
	}
	rec, live, err := p.load(id)
	if err != nil {
		return -1, err
	}
	if !live || rec.State != kiln.InstanceRunning || !instancedir.Alive(rec.LeaderPID, rec.LeaderStart) {
		state := rec.State
		if !live && !rec.terminal() {
			state = kiln.InstanceCrashed
		}
		return -1, kiln.Errorf(kiln.ECONFLICT, "instance %s is %s; commands run only in a running instance", id, state)
	}
	args := append([]string{"--target", fmt.Sprint(rec.LeaderPID), "--all", "--root", "--wd", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8", "TERM=dumb",
		"container=systemd-nspawn",
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	// nsenter has no --kill-child here: kill its whole process group, which
	// the command inside shares.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	return 0, nil
}

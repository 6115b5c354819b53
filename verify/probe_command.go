package verify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// defaultCommandTimeout is goss's: 10 s.
const defaultCommandTimeout = 10 * time.Second

// commandValues runs the command once, with /bin/sh -c, in its own process
// group so that a timeout kills everything it started.
func (s *system) commandValues(ctx context.Context, r *Resource) valuer {
	var out commandOutput
	ran := false
	return func(prop string) (any, error) {
		if !ran {
			ran = true
			out = runCommand(ctx, r.Target, timeoutOf(r, defaultCommandTimeout))
		}
		if out.err != nil {
			return nil, out.err
		}
		switch prop {
		case "exit-status":
			return out.code, nil
		case "stdout":
			return out.stdout, nil
		case "stderr":
			return out.stderr, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

func timeoutOf(r *Resource, def time.Duration) time.Duration {
	if r.TimeoutMS > 0 {
		return time.Duration(r.TimeoutMS) * time.Millisecond
	}
	return def
}

type commandOutput struct {
	code           int
	stdout, stderr string
	err            error
}

func runCommand(ctx context.Context, line string, timeout time.Duration) commandOutput {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", line)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = time.Second
	o := &limitedBuffer{max: maxContents}
	e := &limitedBuffer{max: maxContents}
	cmd.Stdout, cmd.Stderr = o, e
	err := cmd.Run()
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return commandOutput{err: fmt.Errorf("command timed out after %s (set timeout: in milliseconds to allow more)", timeout)}
		}
		return commandOutput{err: fmt.Errorf("command interrupted: %w", ctx.Err())}
	}
	// Trailing newlines go, as with the shell's $(…), so that `stdout: hi`
	// matches `echo hi`.
	res := commandOutput{stdout: strings.TrimRight(o.String(), "\n"), stderr: strings.TrimRight(e.String(), "\n")}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		res.err = fmt.Errorf("run /bin/sh -c: %w", err)
	}
	if o.cut || e.cut {
		res.err = fmt.Errorf("command printed more than %d bytes; filter its output", maxContents)
	}
	return res
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	bytes.Buffer
	max int
	cut bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.cut = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

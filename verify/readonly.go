package verify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/kiln-project/kiln"
)

// ReadOnlyCommand is the hidden kiln command that runs a diagnostic
// command inside an instance without letting it change anything
// (`kiln instance exec NAME --read-only -- CMD` runs
// `ProbePath ReadOnlyCommand -- CMD` there).
const ReadOnlyCommand = "__read-only-exec"

// readOnlyInner marks the second stage, already in its own mount
// namespace.
const readOnlyInner = "--in-namespace"

// ReadOnlyUID and ReadOnlyGID are who the diagnostic command runs as:
// nobody, nogroup.
const (
	ReadOnlyUID = 65534
	ReadOnlyGID = 65534
)

// ReadOnlyArgv is the argv an instance runs for a read-only exec of argv.
func ReadOnlyArgv(argv []string) []string {
	return append([]string{ProbePath, ReadOnlyCommand, "--"}, argv...)
}

// RunReadOnlyMain is ReadOnlyCommand. Started as root, it re-executes
// itself in a new mount namespace (the first stage); there (args start
// with readOnlyInner) it makes every mount of that namespace read-only
// and nosuid, then runs argv as nobody:nogroup with no_new_privs,
// a capability bounding set of CAP_DAC_READ_SEARCH alone and that one
// capability ambient: the command may read every file (logs,
// configuration) but write none, signal no process but nobody's, and
// never regain root through a setuid binary. It returns argv's exit
// status.
func RunReadOnlyMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	inner := len(args) > 0 && args[0] == readOnlyInner
	if inner {
		args = args[1:]
	}
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return -1, kiln.FieldErrorf(kiln.EINVALID, "argv", "no command to run read-only")
	}
	if !inner {
		self, err := os.Executable()
		if err != nil {
			return -1, fmt.Errorf("read-only exec: find kiln's own executable: %w", err)
		}
		cmd := exec.CommandContext(ctx, self, append([]string{ReadOnlyCommand, readOnlyInner, "--"}, args...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
		cmd.Env = []string{}
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
		return exitCode(cmd.Run())
	}
	if err := readOnlyView(); err != nil {
		return -1, err
	}
	// no_new_privs and the bounding set belong to the thread; the command
	// is forked from this one.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return -1, fmt.Errorf("read-only exec: set no_new_privs: %w", err)
	}
	for c := 0; c <= 63; c++ {
		if c == unix.CAP_DAC_READ_SEARCH {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				break // past the kernel's last capability
			}
			return -1, fmt.Errorf("read-only exec: drop capability %d from the bounding set: %w", c, err)
		}
	}
	// The first stage cleared the environment: a bare command name is
	// looked up in the fixed PATH the command itself gets.
	path, err := lookPathIn(args[0], readOnlyPath)
	if err != nil {
		fmt.Fprintf(stderr, "kiln: %s: not found in %s\n", args[0], readOnlyPath)
		return 127, nil
	}
	cmd := exec.CommandContext(ctx, path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=" + readOnlyPath, "HOME=/", "USER=nobody", "LOGNAME=nobody", "LANG=C.UTF-8", "TERM=dumb"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: ReadOnlyUID, Gid: ReadOnlyGID, Groups: []uint32{}},
		AmbientCaps: []uintptr{unix.CAP_DAC_READ_SEARCH},
		Setsid:      false,
	}
	return exitCode(cmd.Run())
}

const readOnlyPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPathIn finds name as exec.LookPath would with PATH set to path: a
// name with a slash is taken as it is, a bare one is searched for in
// path's directories.
func lookPathIn(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		return exec.LookPath(name)
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
}

// readOnlyView makes this mount namespace private (nothing propagates to
// or from the instance's) and every mount in it read-only and nosuid,
// recursively (mount_setattr, Linux 5.12 and later).
func readOnlyView() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("read-only exec: make the mount namespace private: %w", err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID}
	if err := unix.MountSetattr(unix.AT_FDCWD, "/", unix.AT_RECURSIVE, attr); err != nil {
		if errors.Is(err, unix.ENOSYS) {
			return kiln.Errorf(kiln.EUNAVAILABLE, "read-only exec needs Linux 5.12 or later (mount_setattr); use break-glass access instead")
		}
		return fmt.Errorf("read-only exec: make every mount read-only: %w", err)
	}
	return nil
}

// exitCode turns a finished command into its exit status (128+signal
// when a signal ended it).
func exitCode(err error) (int, error) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}

package instancedir

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcStat is what kiln reads of /proc/PID/stat.
type ProcStat struct {
	Comm  string
	State byte
	PPID  int
	Start uint64 // clock ticks after boot: with the PID, identifies a process
}

// ReadProcStat reads /proc/PID/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcStat{}, err
	}
	// comm is in parentheses and may itself hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); field 4 is ppid, field 22 starttime.
	if len(f) < 20 {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return ProcStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return ProcStat{Comm: string(b[open+1 : end]), State: f[0][0], PPID: ppid, Start: start}, nil
}

// ProcStart returns a process's start time and whether it is alive (a
// zombie is not).
func ProcStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	st, err := ReadProcStat(pid)
	if err != nil {
		return 0, false
	}
	return st.Start, st.State != 'Z' && st.State != 'X'
}

// Alive reports whether pid is still the process that started at start
// and has not exited (a zombie counts as gone).
func Alive(pid int, start uint64) bool {
	s, ok := ProcStart(pid)
	return ok && s == start
}

// KillWait kills pid (if it is still the process started at start) and
// waits up to timeout for it to be gone.
func KillWait(pid int, start uint64, timeout time.Duration) bool {
	if !Alive(pid, start) {
		return true
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(timeout)
	for Alive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// Tail returns up to the last n bytes of a file, for error messages.
func Tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no console output: " + err.Error() + ")"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	_, _ = f.ReadAt(b, off)
	return string(b)
}

package local

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStat is what kiln reads of /proc/PID/stat.
type procStat struct {
	Comm  string
	State byte
	PPID  int
	Start uint64 // clock ticks after boot: with the PID, identifies a process
}

func readProcStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// comm is in parentheses and may itself hold spaces and parentheses.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	// f[0] is field 3 (state); field 4 is ppid, field 22 starttime.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: ppid: %w", pid, err)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return procStat{}, fmt.Errorf("/proc/%d/stat: starttime: %w", pid, err)
	}
	return procStat{Comm: string(b[open+1 : end]), State: f[0][0], PPID: ppid, Start: start}, nil
}

// alive reports whether pid is still the process that started at start and
// has not exited (a zombie counts as gone).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := readProcStat(pid)
	if err != nil {
		return false
	}
	return st.Start == start && st.State != 'Z' && st.State != 'X'
}

// killProcess sends sig to pid if it is still the process started at start.
func killProcess(pid int, start uint64, sig syscall.Signal) {
	if alive(pid, start) {
		_ = syscall.Kill(pid, sig)
	}
}

// childrenOf lists the PIDs whose parent is ppid. The kernel here has no
// /proc/PID/task/TID/children, so it scans /proc.
func childrenOf(ppid int) ([]int, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readProcStat(pid)
		if err != nil {
			continue
		}
		if st.PPID == ppid {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// waitGone waits until pid (started at start) has exited. With reap it also
// collects any exited child on the way: only the supervisor may ask for that
// (it is a subreaper, so an instance's init whose nspawn died becomes its
// child); in kiln itself it would steal other goroutines' children.
func waitGone(pid int, start uint64, timeout time.Duration, reap bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if reap {
			reapChildren()
		}
		if !alive(pid, start) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// reapChildren collects exited children without blocking.
func reapChildren() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || errors.Is(err, syscall.ECHILD) {
			return
		}
	}
}

package local

import (
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/kiln-project/kiln/internal/instancedir"
)

// killProcess sends sig to pid if it is still the process started at start.
func killProcess(pid int, start uint64, sig syscall.Signal) {
	if instancedir.Alive(pid, start) {
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
		st, err := instancedir.ReadProcStat(pid)
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
		if !instancedir.Alive(pid, start) {
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

package bake

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProcessesUnder lists the processes whose command line names a path at or
// below dir (nspawn and mmdebstrap runs of a build directory), or whose
// root or working directory is there (what runs chrooted in a bootstrap:
// dpkg, maintainer scripts).
func ProcessesUnder(dir string) []int {
	dir = filepath.Clean(dir)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if under(filepath.Join("/proc", e.Name(), "root"), dir) || under(filepath.Join("/proc", e.Name(), "cwd"), dir) {
			pids = append(pids, pid)
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		for _, arg := range bytes.Split(b, []byte{0}) {
			a := string(arg)
			if i := strings.IndexByte(a, '='); i >= 0 && strings.HasPrefix(a, "--") {
				a = a[i+1:] // --bind-ro=PATH:…, --directory=PATH
			}
			if i := strings.IndexByte(a, ':'); i >= 0 {
				a = a[:i]
			}
			if a == dir || strings.HasPrefix(a, dir+"/") {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// under reports whether the symbolic link link (a process's root or cwd)
// points at dir or below it.
func under(link, dir string) bool {
	t, err := os.Readlink(link)
	return err == nil && (t == dir || strings.HasPrefix(t, dir+"/"))
}

// StopProcesses sends SIGTERM to each pid (nspawn then kills its
// container), waits up to wait for them to end, and SIGKILLs the rest. It
// returns the pids that were signalled.
func StopProcesses(pids []int, wait time.Duration) []int {
	var sent []int
	for _, pid := range pids {
		if syscall.Kill(pid, syscall.SIGTERM) == nil {
			sent = append(sent, pid)
		}
		// kiln starts mmdebstrap and nspawn in a process group of their
		// own (terminate): the group's other members go too.
		if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(wait)
	for _, pid := range sent {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return sent
}

func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// A zombie has ended; only its parent's wait is missing.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && b[i+2] == 'Z' {
		return false
	}
	return true
}

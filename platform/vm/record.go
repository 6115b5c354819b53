package vm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"golang.org/x/sys/unix"
)

// File names inside an instance directory.
const (
	recordFile     = "state.json"
	lockFile       = "supervisor.lock"
	consoleFile    = "console.log"
	supervisorFile = "supervisor.log"
	supervisorPID  = "supervisor.pid" // written by Launch as soon as the supervisor starts
	diskFile       = "disk.qcow2"     // the instance's overlay on the image's disk
	agentSocket    = "agent.sock"     // QEMU's end of the virtio-serial port connects here
	execSocket     = "exec.sock"      // kiln processes open commands here
	qmpSocket      = "qmp.sock"
)

// record is an instance's state.json. Launch writes the first one; after
// that only the holder of supervisor.lock writes it.
type record struct {
	ID      string             `json:"id"`
	Name    string             `json:"name"`
	Version string             `json:"version,omitempty"`
	Digest  string             `json:"digest"`
	Base    string             `json:"base"` // the image's disk in the cache (the overlay's backing file)
	State   kiln.InstanceState `json:"state"`
	// Ports are the forwards asked for until the supervisor has chosen host
	// ports, then the addresses QEMU listens on.
	Ports []kiln.PortForward `json:"ports,omitempty"`

	SupervisorPID int    `json:"supervisor_pid,omitempty"`
	QemuPID       int    `json:"qemu_pid,omitempty"`
	QemuStart     uint64 `json:"qemu_start,omitempty"` // clock ticks after boot, against PID reuse
	Accel         string `json:"accel,omitempty"`

	// Credentials names the launch configuration's credentials, given to
	// QEMU as fw_cfg files from the credentials directory (removed once
	// QEMU has read them); CredentialHashes are their content hashes
	// ("sha256:…" by name) for drift detection.
	Credentials      []string          `json:"credentials,omitempty"`
	CredentialHashes map[string]string `json:"credential_hashes,omitempty"`
	ConfigDigest     string            `json:"config_digest,omitempty"`

	LaunchedAt time.Time `json:"launched_at"`
	EndedAt    time.Time `json:"ended_at,omitzero"`
	Reason     string    `json:"reason,omitempty"`
}

func (r *record) terminal() bool {
	return r.State == kiln.InstanceStopped || r.State == kiln.InstanceCrashed || r.State == kiln.InstanceDestroyed
}

func readRecord(dir string) (*record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("read %s: %w", filepath.Join(dir, recordFile), err)
	}
	return &r, nil
}

func writeRecord(dir string, r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write instance record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, recordFile)); err != nil {
		return fmt.Errorf("write instance record: %w", err)
	}
	return nil
}

// tryLock takes the instance's supervisor lock without waiting; (nil, nil)
// when a live supervisor holds it.
func tryLock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// supervised reports whether a supervisor holds the instance's lock.
func supervised(dir string) (bool, error) {
	f, err := tryLock(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	if f == nil {
		return true, nil
	}
	f.Close()
	return false, nil
}

func supervisorOf(dir string, rec *record) int {
	if rec != nil && rec.SupervisorPID > 0 {
		return rec.SupervisorPID
	}
	b, err := os.ReadFile(filepath.Join(dir, supervisorPID))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// procStart returns a process's start time (clock ticks after boot) and
// whether it is alive (a zombie is not).
func procStart(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 20 {
		return 0, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return start, f[0] != "Z" && f[0] != "X"
}

// alive reports whether pid is still the process started at start.
func alive(pid int, start uint64) bool {
	s, ok := procStart(pid)
	return ok && s == start
}

// killWait kills pid (if it is still the process started at start) and
// waits up to timeout for it to be gone.
func killWait(pid int, start uint64, timeout time.Duration) bool {
	if !alive(pid, start) {
		return true
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(timeout)
	for alive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// tail returns up to the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
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

// lastLines returns the last n lines of a file, without terminal escapes
// the firmware and boot loader write.
func lastLines(path string, n int) string {
	s := tail(path, 16384)
	s = strings.ReplaceAll(s, "\r", "")
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		l = stripEscapes(l)
		if strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	if len(keep) == 0 {
		return "(the serial console is empty: the firmware had not started the boot loader yet)"
	}
	return strings.Join(keep, "\n")
}

func stripEscapes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b {
			// CSI: ESC [ params final-byte
			if i+1 < len(s) && s[i+1] == '[' {
				j := i + 2
				for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
					j++
				}
				i = j
				continue
			}
			i++
			continue
		}
		if s[i] < 0x20 && s[i] != '\t' {
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

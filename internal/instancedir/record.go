package instancedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kiln-project/kiln/internal/flock"
)

// File names every supervised instance directory has.
const (
	RecordFile     = "state.json"
	LockFile       = "supervisor.lock"
	SupervisorLog  = "supervisor.log"
	SupervisorPID  = "supervisor.pid" // written by Launch as soon as the supervisor starts
	CredentialsDir = "credentials"    // the launch configuration (0700, each file 0600) until the platform has read it
)

// ReadRecord reads dir's state.json into r (a driver's own record type).
func ReadRecord(dir string, r any) error {
	b, err := os.ReadFile(filepath.Join(dir, RecordFile))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, r); err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(dir, RecordFile), err)
	}
	return nil
}

// WriteRecord replaces dir's state.json with r atomically.
func WriteRecord(dir string, r any) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, RecordFile+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write instance record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, RecordFile)); err != nil {
		return fmt.Errorf("write instance record: %w", err)
	}
	return nil
}

// TryLock takes the instance's supervisor lock without waiting. It
// returns (nil, nil) when someone — a live supervisor — holds it.
func TryLock(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock.TryLock(f, flock.Exclusive); err != nil {
		f.Close()
		if errors.Is(err, flock.ErrHeld) {
			return nil, nil
		}
		return nil, err
	}
	return f, nil
}

// Supervised reports whether a supervisor holds the instance's lock; a
// directory that is gone has none.
func Supervised(dir string) (bool, error) {
	f, err := TryLock(dir)
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

// SupervisorOf returns the supervisor's PID: recorded (the PID the
// supervisor wrote into its record, 0 before it did), else from the pid
// file Launch wrote.
func SupervisorOf(dir string, recorded int) int {
	if recorded > 0 {
		return recorded
	}
	b, err := os.ReadFile(filepath.Join(dir, SupervisorPID))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Package flock takes advisory whole-file locks (flock(2)): how kiln's
// processes on one machine agree who owns a build directory, an instance,
// a cache or a service's front end. A lock lives as long as the open file
// it was taken on: closing the file, or the process ending, lets it go.
// Locks are per open file, so two opens of one path in one process
// exclude each other too.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Mode says whether a lock is shared with other shared holders or
// exclusive.
type Mode int

// Lock modes.
const (
	Shared    Mode = unix.LOCK_SH
	Exclusive Mode = unix.LOCK_EX
)

// ErrHeld is what TryLock's error wraps when another open file — usually
// another process — holds a lock that conflicts with the one asked for.
var ErrHeld = errors.New("held by another process")

// pollInterval is how often Lock tries again while it waits under a
// context that can end.
const pollInterval = 50 * time.Millisecond

// TryLock takes a lock of mode m on f without waiting. When another holds
// a conflicting lock the error wraps ErrHeld.
func TryLock(f *os.File, m Mode) error {
	err := flock(f, int(m)|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return fmt.Errorf("lock %s: %w", f.Name(), ErrHeld)
	}
	if err != nil {
		return fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return nil
}

// Lock takes a lock of mode m on f, waiting until it is free or ctx ends
// (then it returns ctx's error). Under a context that never ends
// (context.Background()) it waits in the kernel.
func Lock(ctx context.Context, f *os.File, m Mode) error {
	if ctx.Done() == nil {
		if err := flock(f, int(m)); err != nil {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		return nil
	}
	for {
		err := TryLock(f, m)
		if !errors.Is(err, ErrHeld) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// flock calls flock(2), again when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// workdir is one build's directory, <dataDir>/build/<id>. It holds an
// exclusive flock on its "lock" file for the build's life: Cleanup takes
// that lock to know the owner is gone. Every mount made in it is tracked
// so close can undo them in reverse order.
type workdir struct {
	id     string
	dir    string
	lock   *os.File
	logger *slog.Logger

	mu     sync.Mutex
	mounts []string
}

// newWorkdirPrefix names a build directory being created; Cleanup leaves
// a young one alone.
const newWorkdirPrefix = ".new-"

// holdDirPrefix names a directory that only holds cache entries for a
// reader outside the build (Trees): prune honours its holds but does not
// count it as a running build.
const holdDirPrefix = "hold-"

func newWorkdir(dataDir string, logger *slog.Logger) (*workdir, error) {
	return newWorkdirNamed(dataDir, "", logger)
}

// newWorkdirNamed is newWorkdir with a prefix to its name.
func newWorkdirNamed(dataDir, prefix string, logger *slog.Logger) (*workdir, error) {
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := prefix + time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
	dir := filepath.Join(dataDir, "build", id)
	// The directory appears under its name only with its lock held: Cleanup
	// takes a build directory whose lock is free (or missing) for an
	// interrupted build, and kiln cache prune probes the locks.
	tmp := filepath.Join(dataDir, "build", newWorkdirPrefix+id)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("create build directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(tmp, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("create build lock: %w", err)
	}
	// Blocking: a prune probing the lock holds it for a moment only.
	if err := flock.Lock(context.Background(), lock, flock.Exclusive); err != nil {
		lock.Close()
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("lock build directory: %w", err)
	}
	_, _ = lock.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if err := os.Rename(tmp, dir); err != nil {
		lock.Close()
		_ = os.RemoveAll(tmp)
		return nil, fmt.Errorf("create build directory: %w", err)
	}
	return &workdir{id: id, dir: dir, lock: lock, logger: logger}, nil
}

func (w *workdir) path(elem ...string) string {
	return filepath.Join(append([]string{w.dir}, elem...)...)
}

// mount mounts o and records it.
func (w *workdir) mount(o *overlayfs.Overlay) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := o.Mount(); err != nil {
		return err
	}
	w.mounts = append(w.mounts, o.Target)
	return nil
}

// unmount undoes one mount made by mount.
func (w *workdir) unmount(target string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := len(w.mounts) - 1; i >= 0; i-- {
		if w.mounts[i] == target {
			if err := overlayfs.Unmount(target); err != nil {
				return err
			}
			w.mounts = append(w.mounts[:i], w.mounts[i+1:]...)
			return nil
		}
	}
	return nil
}

// close stops processes still running in the directory, unmounts
// everything (tracked mounts, then anything else the mount table shows
// there), and removes the directory.
func (w *workdir) close() error {
	var errs []error
	if pids := bake.ProcessesUnder(w.dir); len(pids) > 0 {
		w.logger.Warn("stopping build processes left running", "pids", pids)
		bake.StopProcesses(pids, 10*time.Second)
	}
	w.mu.Lock()
	for i := len(w.mounts) - 1; i >= 0; i-- {
		if err := overlayfs.Unmount(w.mounts[i]); err != nil {
			errs = append(errs, err)
		}
	}
	w.mounts = nil
	w.mu.Unlock()
	if left, err := overlayfs.MountsUnder(w.dir); err == nil {
		for _, m := range left {
			if err := overlayfs.Unmount(m); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(w.dir); err != nil {
			errs = append(errs, err)
		}
	}
	_ = w.lock.Close()
	if len(errs) > 0 {
		return fmt.Errorf("clean build directory %s: %w", w.dir, errors.Join(errs...))
	}
	return nil
}

package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kiln-project/kiln/internal/flock"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"github.com/kiln-project/kiln/platform/local/bake"
)

// CleanupReport says what Cleanup removed.
type CleanupReport struct {
	// Builds are the build directories of interrupted builds removed.
	Builds []string
	// Mounts are the mount points unmounted.
	Mounts []string
	// Processes are the pids of stale nspawn/mmdebstrap processes stopped.
	Processes []int
	// TempFiles are partial artifacts and cache entries removed.
	TempFiles []string
}

// Empty reports whether nothing was cleaned.
func (r *CleanupReport) Empty() bool {
	return len(r.Builds)+len(r.Mounts)+len(r.Processes)+len(r.TempFiles) == 0
}

func (r *CleanupReport) String() string {
	if r.Empty() {
		return "nothing to clean"
	}
	return fmt.Sprintf("removed %d interrupted build(s), %d mount(s), %d process(es), %d temporary file(s)",
		len(r.Builds), len(r.Mounts), len(r.Processes), len(r.TempFiles))
}

// TempCleaner is an artifact store that removes what its interrupted
// writes left (artifact.Store does).
type TempCleaner interface {
	// CleanTemp removes temporary files older than age and names them.
	CleanTemp(ctx context.Context, age time.Duration) ([]string, error)
}

// Cleanup removes what builds killed without a chance to clean up (kill -9,
// a crash, a power cut) left under dataDir: for each build directory whose
// lock no live process holds, it stops the processes still running there,
// unmounts its overlays and deletes it; it also deletes temporary files of
// interrupted writes to arts (nil: none) and the cache older than a minute.
// Builds still running (in this or another process) are left alone. Call
// it when kiln starts; it logs and reports what it cleaned.
func Cleanup(ctx context.Context, dataDir string, arts TempCleaner, logger *slog.Logger) (*CleanupReport, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rep := &CleanupReport{}
	root := filepath.Join(dataDir, "build")
	ents, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, fmt.Errorf("cleanup: %w", err)
	}
	var errs []error
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		if !e.IsDir() {
			continue
		}
		if strings.HasPrefix(e.Name(), newWorkdirPrefix) {
			// A build directory being created; one left by a crash in the
			// few instructions before its rename is removed once old.
			if fi, err := e.Info(); err != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
		}
		dir := filepath.Join(root, e.Name())
		lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
		if err == nil {
			if flock.TryLock(lock, flock.Exclusive) != nil {
				lock.Close() // a live build owns it
				continue
			}
		}
		// Again until none is left: a process stopped may have started
		// another meanwhile (apt's dpkg, a maintainer script).
		for range 5 {
			pids := bake.ProcessesUnder(dir)
			if len(pids) == 0 {
				break
			}
			stopped := bake.StopProcesses(pids, 10*time.Second)
			rep.Processes = append(rep.Processes, stopped...)
			logger.Info("stopped processes of an interrupted build", "dir", dir, "pids", stopped)
		}
		mounts, err := overlayfs.MountsUnder(dir)
		if err != nil {
			errs = append(errs, err)
		}
		unmounted := true
		for _, m := range mounts {
			if err := overlayfs.Unmount(m); err != nil {
				errs = append(errs, err)
				unmounted = false
				continue
			}
			rep.Mounts = append(rep.Mounts, m)
		}
		if lock != nil {
			lock.Close()
		}
		if !unmounted {
			continue // never delete through a mount
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
			continue
		}
		rep.Builds = append(rep.Builds, dir)
		logger.Info("removed interrupted build", "dir", dir, "mounts", len(mounts))
	}
	if arts != nil {
		removed, err := arts.CleanTemp(ctx, time.Minute)
		if err != nil {
			errs = append(errs, err)
		}
		rep.TempFiles = append(rep.TempFiles, removed...)
	}
	rep.TempFiles = append(rep.TempFiles, cleanCacheTemp(filepath.Join(dataDir, "cache"))...)
	if !rep.Empty() {
		logger.Info("cleaned up after interrupted builds", "summary", rep.String())
	}
	return rep, errors.Join(errs...)
}

// cleanCacheTemp removes half-written cache entries (".tmp-" names).
func cleanCacheTemp(dir string) []string {
	var removed []string
	for _, sub := range []string{"steps", "layers", "artifacts", filepath.Join("apt", sharedParsedDir)} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), tmpPrefix) {
				continue
			}
			fi, err := e.Info()
			if err != nil || time.Since(fi.ModTime()) < time.Minute {
				continue
			}
			p := filepath.Join(dir, sub, e.Name())
			if os.RemoveAll(p) == nil {
				removed = append(removed, p)
			}
		}
	}
	return removed
}

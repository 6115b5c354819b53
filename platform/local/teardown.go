package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/kiln-project/kiln/internal/overlayfs"
)

// Stop shuts the instance down in an orderly way (systemd halts inside) and
// waits for it; stopping a stopped or crashed instance does nothing.
func (p *Platform) Stop(ctx context.Context, id string) error {
	rec, live, err := p.load(id)
	if err != nil {
		return err
	}
	if live {
		if pid := supervisorOf(p.instanceDir(id), rec); pid > 0 {
			_ = syscall.Kill(pid, sigStop)
		}
		if err := p.waitUnsupervised(ctx, id, stopTimeout+killTimeout+5*time.Second); err != nil {
			return err
		}
	}
	return p.settle(id, "stopped by kiln")
}

// waitUnsupervised waits until the supervisor has released the lock.
func (p *Platform) waitUnsupervised(ctx context.Context, id string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		live, err := instancedir.Supervised(p.instanceDir(id))
		if err != nil || !live {
			return err
		}
		if time.Now().After(deadline) {
			return kiln.Errorf(kiln.EUNAVAILABLE, "the supervisor of instance %s did not end within %s; see %s", id, timeout, filepath.Join(p.instanceDir(id), supervisorFile))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", id, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// settle takes the lock of an instance whose supervisor is gone, kills and
// removes whatever the supervisor left (it may have been killed), and records
// an end if none was recorded. reason is used when the record had no end.
func (p *Platform) settle(id, reason string) error {
	dir := p.instanceDir(id)
	lock, err := instancedir.TryLock(dir)
	if err != nil {
		return err
	}
	if lock == nil {
		return kiln.Errorf(kiln.ECONFLICT, "instance %s is being supervised again; retry", id)
	}
	defer lock.Close()
	rec, err := readRecord(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return p.cleanupHost(dir, &record{Machine: p.machineName(id), Netns: p.machineName(id)})
		}
		return err
	}
	cerr := p.cleanupHost(dir, rec)
	if !rec.terminal() {
		rec.State = kiln.InstanceCrashed
		rec.Reason = reason
		rec.EndedAt = time.Now().UTC()
		if err := writeRecord(dir, rec); err != nil {
			return errors.Join(cerr, err)
		}
	}
	return cerr
}

// cleanupHost kills an unsupervised instance's processes and removes its
// mounts and network namespace. The caller holds the lock.
func (p *Platform) cleanupHost(dir string, rec *record) error {
	killProcess(rec.LeaderPID, rec.LeaderStart, syscall.SIGKILL)
	killProcess(rec.NspawnPID, rec.NspawnStart, syscall.SIGKILL)
	waitGone(rec.LeaderPID, rec.LeaderStart, killTimeout, false)
	waitGone(rec.NspawnPID, rec.NspawnStart, killTimeout, false)
	var errs []error
	if err := overlayfs.UnmountAll(dir); err != nil {
		errs = append(errs, err)
	}
	if rec.Netns != "" {
		if err := deleteNetns(rec.Netns); err != nil {
			errs = append(errs, err)
		}
	}
	removePropagateDir(rec.Machine)
	return errors.Join(errs...)
}

// Destroy kills the instance at once (its disk is deleted, so there is
// nothing to shut down cleanly) and removes its directory, mounts, network
// namespace and processes. An unknown instance is not an error.
func (p *Platform) Destroy(ctx context.Context, id string) error {
	if err := validateID("id", id); err != nil {
		return err
	}
	dir := p.instanceDir(id)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	rec, _ := readRecord(dir)
	live, err := instancedir.Supervised(dir)
	if err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	if pid := supervisorOf(dir, rec); live && pid > 0 {
		_ = syscall.Kill(pid, sigDestroy)
		if err := p.waitUnsupervised(ctx, id, killTimeout+5*time.Second); err != nil {
			// A wedged supervisor: kill it; settle cleans up after it.
			p.log.Warn("killing supervisor", "id", id, "err", err)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if err := p.waitUnsupervised(ctx, id, killTimeout); err != nil {
				return fmt.Errorf("destroy %s: %w", id, err)
			}
		}
	} else if live {
		// Launch has not started the supervisor yet, or its record is torn.
		if err := p.waitUnsupervised(ctx, id, killTimeout); err != nil {
			return fmt.Errorf("destroy %s: %w", id, err)
		}
	}
	if err := p.settle(id, "destroyed"); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	if m, err := overlayfs.MountsUnder(dir); err != nil || len(m) > 0 {
		return kiln.Errorf(kiln.EINTERNAL, "destroy %s: mounts remain under %s (%v, %v); unmount them and destroy again", id, dir, m, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	p.log.Info("instance destroyed", "id", id)
	return nil
}

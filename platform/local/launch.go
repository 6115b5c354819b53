package local

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"golang.org/x/sys/unix"
)

// DefaultLaunchTimeout bounds a boot when LaunchSpec.Timeout is zero.
const DefaultLaunchTimeout = 60 * time.Second

// hostnameRE is a hostname Launch can give an instance as is (its name in
// lower case); other names get the machine name instead.
var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Launch boots an instance. Its timeout covers the boot, not the one-time
// unpacking of a new artifact into the rootfs cache, which only ctx bounds.
func (p *Platform) Launch(ctx context.Context, spec kiln.LaunchSpec) (res *kiln.LaunchResult, err error) {
	if err := validateID("id", spec.ID); err != nil {
		return nil, err
	}
	if err := kiln.ValidateDigest("artifact.digest", spec.Artifact.Digest); err != nil {
		return nil, err
	}
	for i, pf := range spec.Ports {
		if err := validatePort(i, pf); err != nil {
			return nil, err
		}
	}
	if spec.Config != nil {
		for i, addr := range spec.Config.Egress {
			if err := validateEgress(i, addr); err != nil {
				return nil, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultLaunchTimeout
	}
	dir := p.instanceDir(spec.ID)
	if _, err := os.Stat(dir); err == nil {
		return nil, kiln.FieldErrorf(kiln.ECONFLICT, "id", "instance %s exists already; destroy it first or choose another id", spec.ID)
	}

	// Shared with other launches, exclusive with PruneRootfs, until the
	// record naming the lower dir is written.
	unlockCache, err := p.cacheLock(unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	defer unlockCache()
	lowers, err := p.lowers(ctx, spec.Artifact)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}

	if err := os.Mkdir(dir, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, kiln.FieldErrorf(kiln.ECONFLICT, "id", "instance %s exists already; destroy it first or choose another id", spec.ID)
		}
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	defer func() {
		if err != nil {
			if derr := p.Destroy(context.WithoutCancel(ctx), spec.ID); derr != nil {
				err = errors.Join(err, fmt.Errorf("tear down after failed launch: %w", derr))
			}
		}
	}()
	// Hold the lock from the start, so that a Reconcile in another kiln
	// process never takes this half-made instance for an abandoned one; the
	// supervisor inherits it.
	lock, err := instancedir.TryLock(dir)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	if lock == nil {
		return nil, kiln.FieldErrorf(kiln.ECONFLICT, "id", "instance %s is being launched by another kiln process", spec.ID)
	}
	defer lock.Close() // runs before the deferred Destroy above
	for _, d := range []string{upperDir, workDir, mergedDir} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
		}
	}
	hostname := strings.ToLower(spec.Name)
	if !hostnameRE.MatchString(hostname) {
		hostname = p.machineName(spec.ID)
	}
	rec := &record{
		ID:         spec.ID,
		Name:       spec.Name,
		Digest:     spec.Artifact.Digest,
		Machine:    p.machineName(spec.ID),
		Hostname:   hostname,
		Netns:      p.machineName(spec.ID),
		Lower:      lowers[0],
		Probe:      p.probe,
		State:      kiln.InstanceStarting,
		Ports:      spec.Ports,
		LaunchedAt: time.Now().UTC(),
	}
	if spec.Artifact.Layered() {
		rec.Lower, rec.Lowers = "", lowers
	}
	if !spec.Version.IsZero() {
		rec.Version = spec.Version.String()
	}
	if spec.Config != nil {
		if rec.Credentials, rec.CredentialHashes, err = instancedir.WriteCredentials(dir, spec.Config, 0); err != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
		}
		rec.ConfigDigest = spec.Config.Digest
		rec.Egress = slices.Clone(spec.Config.Egress)
	}
	if err := writeRecord(dir, rec); err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	unlockCache()

	bootCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	err = p.startSupervisor(bootCtx, dir, lock)
	lock.Close() // the supervisor holds it now, or it failed
	if err != nil {
		if ctx.Err() == nil && errors.Is(bootCtx.Err(), context.DeadlineExceeded) {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not start within %s; raise the launch timeout or look at the console output:\n%s", spec.ID, timeout, instancedir.Tail(filepath.Join(dir, consoleFile), 4096))
		}
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	p.log.Debug("supervisor ready", "id", spec.ID, "elapsed", time.Since(t0))
	state, failed, err := p.waitBoot(bootCtx, spec.ID, dir)
	p.log.Debug("boot finished", "id", spec.ID, "elapsed", time.Since(t0))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, ctx.Err())
		}
		return nil, err
	}
	rec, err = readRecord(dir)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	p.log.Info("instance running", "id", spec.ID, "state", state, "failed_units", failed, "ports", rec.Ports)
	return &kiln.LaunchResult{State: state, FailedUnits: failed, Ports: rec.Ports}, nil
}

// startSupervisor starts the supervisor detached from this process (own
// session, output to supervisor.log), hands it the locked supervisor.lock,
// and waits for it to report that nspawn runs.
func (p *Platform) startSupervisor(ctx context.Context, dir string, lock *os.File) error {
	return instancedir.StartSupervisor(ctx, dir, append(append([]string{}, p.supervisor...), "--dir", dir), lock)
}

// waitBoot waits until the instance's systemd has finished booting and
// reports running or degraded (with the failed units).
func (p *Platform) waitBoot(ctx context.Context, id, dir string) (kiln.InstanceState, []string, error) {
	last := ""
	for {
		var out bytes.Buffer
		// --wait blocks until boot finishes once systemd answers; before that
		// systemctl fails at once and is retried.
		_, err := p.Exec(ctx, id, []string{"systemctl", "is-system-running", "--wait"}, kiln.ExecIO{Stdout: &out})
		if err != nil && kiln.ErrorCode(err) != kiln.ECONFLICT && ctx.Err() == nil {
			return "", nil, err
		}
		if s := strings.TrimSpace(out.String()); s != "" {
			last = s
		}
		switch last {
		case "running":
			return kiln.InstanceRunning, nil, nil
		case "degraded":
			units, err := p.failedUnits(ctx, id)
			return kiln.InstanceDegraded, units, err
		case "maintenance", "stopping":
			return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not boot: systemd reports %q; console output:\n%s", id, last, instancedir.Tail(filepath.Join(dir, consoleFile), 4096))
		}
		rec, rerr := readRecord(dir)
		if rerr == nil && rec.terminal() {
			return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s ended while booting (%s); console output:\n%s", id, rec.Reason, instancedir.Tail(filepath.Join(dir, consoleFile), 4096))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not finish booting in time (systemd last said %q); raise the launch timeout or look at the console output:\n%s", id, last, instancedir.Tail(filepath.Join(dir, consoleFile), 4096))
			}
			return "", nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// failedUnits lists the units systemd inside the instance reports failed.
func (p *Platform) failedUnits(ctx context.Context, id string) ([]string, error) {
	var out bytes.Buffer
	if _, err := p.Exec(ctx, id, []string{"systemctl", "list-units", "--failed", "--plain", "--no-legend", "--no-pager"}, kiln.ExecIO{Stdout: &out}); err != nil {
		return nil, err
	}
	var units []string
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			units = append(units, f[0])
		}
	}
	return units, nil
}

package local

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/overlayfs"
	"golang.org/x/sys/unix"
)

var _ kiln.Platform = (*Platform)(nil)

// DefaultLaunchTimeout bounds a boot when LaunchSpec.Timeout is zero.
const DefaultLaunchTimeout = 60 * time.Second

// Config configures the local platform.
type Config struct {
	// DataDir is kiln's data directory; the platform keeps its files under
	// DataDir/local.
	DataDir string
	// Artifacts is where versions' root filesystem tarballs are read from.
	Artifacts kiln.ArtifactStore
	Logger    *slog.Logger
	// ProbeBinary is the host file mounted read-only at ProbePath in every
	// instance; empty means the running executable.
	ProbeBinary string
	// Supervisor is the command that runs SupervisorMain, to which
	// "--dir DIR" is appended; empty means the running executable with the
	// hidden command "__supervise".
	Supervisor []string
}

// Platform runs instances on this machine with systemd-nspawn.
type Platform struct {
	dataDir    string // DataDir/local
	artifacts  kiln.ArtifactStore
	log        *slog.Logger
	probe      string
	supervisor []string
}

// New checks cfg and the tools the platform needs and returns the platform.
func New(cfg Config) (*Platform, error) {
	if cfg.DataDir == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "data_dir", "the local platform needs a data directory")
	}
	if cfg.Artifacts == nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts", "the local platform needs an artifact store")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("local platform: %w", err)
	}
	p := &Platform{
		dataDir:    filepath.Join(dataDir, "local"),
		artifacts:  cfg.Artifacts,
		log:        cfg.Logger,
		probe:      cfg.ProbeBinary,
		supervisor: cfg.Supervisor,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.probe == "" || len(p.supervisor) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local platform: find own executable: %w", err)
		}
		if p.probe == "" {
			p.probe = exe
		}
		if len(p.supervisor) == 0 {
			p.supervisor = []string{exe, "__supervise"}
		}
	}
	if !filepath.IsAbs(p.probe) {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "probe_binary", "%q is not an absolute path", p.probe)
	}
	if fi, err := os.Stat(p.probe); err != nil || !fi.Mode().IsRegular() {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "probe_binary", "%q is not a file (%v); point it at the kiln binary", p.probe, err)
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter", "tar"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "the local platform needs %s, which is not on PATH; install systemd-container, util-linux and tar", tool)
		}
	}
	for _, d := range []string{"rootfs", "instances"} {
		if err := os.MkdirAll(filepath.Join(p.dataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("local platform: %w", err)
		}
	}
	return p, nil
}

// Name is "local".
func (p *Platform) Name() string { return "local" }

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func validateID(field, id string) error {
	if !idRE.MatchString(id) || strings.Contains(id, "..") {
		return kiln.FieldErrorf(kiln.EINVALID, field, "instance id %q must be 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

var hostnameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func (p *Platform) instanceDir(id string) string {
	return filepath.Join(p.dataDir, "instances", id)
}

// machineName is unique on the host for this data directory and id, so that
// two data directories (two kiln setups, parallel tests) never collide on
// nspawn machine or network namespace names.
func (p *Platform) machineName(id string) string {
	h := sha256.Sum256([]byte(p.dataDir + "\x00" + id))
	return "kiln-" + hex.EncodeToString(h[:6])
}

// UpperDir is the directory that holds everything the instance changed in
// its root filesystem (overlayfs upper layer: whiteouts mark deletions).
func (p *Platform) UpperDir(id string) string {
	return filepath.Join(p.instanceDir(id), upperDir)
}

// LowerDir is the image's root filesystem the instance runs on: the
// unpacked artifact in the rootfs cache, the overlay's read-only lower
// layer, which the cache keeps while the instance exists. Drift detection
// compares UpperDir with it. ENOTFOUND when the instance does not exist on
// this machine or its image's tree is gone from the cache.
func (p *Platform) LowerDir(id string) (string, error) {
	rec, _, err := p.load(id)
	if err != nil {
		return "", err
	}
	if rec.Lower == "" {
		return "", kiln.Errorf(kiln.EINTERNAL, "the record of instance %s does not name its image's root filesystem; destroy the instance and launch it again", id)
	}
	if fi, err := os.Stat(rec.Lower); err != nil || !fi.IsDir() {
		return "", kiln.Errorf(kiln.ENOTFOUND, "the image's root filesystem of instance %s (%s) is gone from the rootfs cache; destroy the instance and launch it again", id, rec.Lower)
	}
	return rec.Lower, nil
}

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
	lower, err := p.rootfs(ctx, spec.Artifact.Digest)
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
	lock, err := tryLock(dir)
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
		Lower:      lower,
		Probe:      p.probe,
		State:      kiln.InstanceStarting,
		Ports:      spec.Ports,
		LaunchedAt: time.Now().UTC(),
	}
	if !spec.Version.IsZero() {
		rec.Version = spec.Version.String()
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
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not start within %s; raise the launch timeout or look at the console output:\n%s", spec.ID, timeout, tail(filepath.Join(dir, consoleFile), 4096))
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

// supervisorEnv is the supervisor's environment: PATH, locale and time
// zone only. It outlives the kiln that launched the instance (often kiln
// serve), so it must not keep that process's tokens and credentials.
func supervisorEnv() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	env := []string{"PATH=" + path}
	for _, n := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(n); ok {
			env = append(env, n+"="+v)
		}
	}
	return env
}

// startSupervisor starts the supervisor detached from this process (own
// session, output to supervisor.log), hands it the locked supervisor.lock,
// and waits for it to report that nspawn runs.
func (p *Platform) startSupervisor(ctx context.Context, dir string, lock *os.File) error {
	log, err := os.OpenFile(filepath.Join(dir, supervisorFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer log.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()

	args := append(append([]string{}, p.supervisor[1:]...), "--dir", dir)
	cmd := exec.Command(p.supervisor[0], args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.ExtraFiles = []*os.File{lock, readyW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	cmd.Env = supervisorEnv()
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start supervisor: %w", err)
	}
	// Stop and Destroy need the PID before the supervisor records it.
	if err := os.WriteFile(filepath.Join(dir, supervisorPID), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return fmt.Errorf("start supervisor: %w", err)
	}
	// Reap it if it ends while this process lives; otherwise init does.
	go func() { _ = cmd.Wait() }()

	msg := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(readyR).ReadString('\n')
		msg <- strings.TrimSpace(line)
	}()
	select {
	case m := <-msg:
		if m == "ok" {
			return nil
		}
		if m == "" {
			return fmt.Errorf("supervisor exited without reporting; see %s", filepath.Join(dir, supervisorFile))
		}
		return decodeFailure(m)
	case <-ctx.Done():
		readyR.Close()
		return ctx.Err()
	}
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
			return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not boot: systemd reports %q; console output:\n%s", id, last, tail(filepath.Join(dir, consoleFile), 4096))
		}
		rec, rerr := readRecord(dir)
		if rerr == nil && rec.terminal() {
			return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s ended while booting (%s); console output:\n%s", id, rec.Reason, tail(filepath.Join(dir, consoleFile), 4096))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not finish booting in time (systemd last said %q); raise the launch timeout or look at the console output:\n%s", id, last, tail(filepath.Join(dir, consoleFile), 4096))
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

// load reads an instance's record and whether its supervisor is alive.
func (p *Platform) load(id string) (*record, bool, error) {
	if err := validateID("id", id); err != nil {
		return nil, false, err
	}
	dir := p.instanceDir(id)
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, kiln.Errorf(kiln.ENOTFOUND, "instance %s does not exist on the local platform", id)
	}
	if err != nil {
		return nil, false, err
	}
	live, err := supervised(dir)
	if err != nil {
		return nil, false, err
	}
	return rec, live, nil
}

// Exec runs argv inside the instance, in all its namespaces and as root,
// with a minimal environment. Cancelling ctx kills the command's process
// group.
func (p *Platform) Exec(ctx context.Context, id string, argv []string, stdio kiln.ExecIO) (int, error) {
	if len(argv) == 0 {
		return -1, kiln.FieldErrorf(kiln.EINVALID, "argv", "no command to run")
	}
	rec, live, err := p.load(id)
	if err != nil {
		return -1, err
	}
	if !live || rec.State != kiln.InstanceRunning || !alive(rec.LeaderPID, rec.LeaderStart) {
		state := rec.State
		if !live && !rec.terminal() {
			state = kiln.InstanceCrashed
		}
		return -1, kiln.Errorf(kiln.ECONFLICT, "instance %s is %s; commands run only in a running instance", id, state)
	}
	args := append([]string{"--target", fmt.Sprint(rec.LeaderPID), "--all", "--root", "--wd", "--"}, argv...)
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8", "TERM=dumb",
		"container=systemd-nspawn",
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.Stdin, stdio.Stdout, stdio.Stderr
	// nsenter has no --kill-child here: kill its whole process group, which
	// the command inside shares.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	if err != nil {
		return -1, fmt.Errorf("exec in %s: %w", id, err)
	}
	return 0, nil
}

// State reports the instance's state: the supervisor's record, corrected by
// what is alive, and for a running instance what its systemd says now. An
// unknown instance is an error with code ENOTFOUND.
func (p *Platform) State(ctx context.Context, id string) (kiln.InstanceState, error) {
	rec, live, err := p.load(id)
	if err != nil {
		return "", err
	}
	return p.stateOf(ctx, rec, live), nil
}

func (p *Platform) stateOf(ctx context.Context, rec *record, live bool) kiln.InstanceState {
	switch {
	case rec.terminal():
		return rec.State
	case !live:
		// The supervisor is gone without writing an end: it was killed.
		return kiln.InstanceCrashed
	case rec.State != kiln.InstanceRunning:
		return rec.State
	case !alive(rec.LeaderPID, rec.LeaderStart):
		return kiln.InstanceCrashed // the supervisor is about to record it
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := p.Exec(ctx, rec.ID, []string{"systemctl", "is-system-running"}, kiln.ExecIO{Stdout: &out}); err == nil {
		switch strings.TrimSpace(out.String()) {
		case "degraded":
			return kiln.InstanceDegraded
		case "initializing", "starting":
			return kiln.InstanceStarting
		}
	}
	return kiln.InstanceRunning
}

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
		live, err := supervised(p.instanceDir(id))
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
	lock, err := tryLock(dir)
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
	live, err := supervised(dir)
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

package vm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"golang.org/x/sys/unix"
)

var _ kiln.Platform = (*Platform)(nil)

// DefaultLaunchTimeout bounds a boot when LaunchSpec.Timeout is zero: a
// TCG boot of a Debian image takes 12–25 s on a small machine.
const DefaultLaunchTimeout = 3 * time.Minute

// Config configures the VM platform.
type Config struct {
	// DataDir is kiln's data directory; the platform keeps its files under
	// DataDir/vm.
	DataDir string
	// Artifacts is where versions' disk images (qcow2 or raw) are read from.
	Artifacts kiln.ArtifactStore
	Logger    *slog.Logger
	// Accel is AccelAuto (KVM when usable, else TCG), AccelKVM or AccelTCG.
	Accel string
	// MemoryMiB and CPUs size each guest; zero means 1024 MiB and
	// DefaultCPUs.
	MemoryMiB int
	CPUs      int
	// DiskSize is each instance's virtual disk size in bytes when larger than
	// the image's (the root grows into it at first boot); zero keeps the
	// image's size.
	DiskSize int64
	// Boot is BootAuto (direct under TCG, firmware under KVM), BootFirmware
	// or BootDirect.
	Boot string
	// Supervisor is the command that runs SupervisorMain, to which its flags
	// are appended; empty means the running executable with the hidden
	// command "__vm-supervise".
	Supervisor []string
}

// DefaultCPUs is a guest's virtual CPUs when Config.CPUs is zero: 2 where
// this machine has two or more, else 1. Under TCG each virtual CPU is a
// host thread (multi-threaded TCG), so a guest's boot — systemd starting
// units side by side — runs on two host cores; measured on the disk
// benchmark's image at load 11–16 (docs/vm.md): 20 % less wall time to
// tests passed, for at most a quarter more CPU time in all.
func DefaultCPUs() int {
	return min(2, max(1, runtime.NumCPU()))
}

// Platform runs instances as QEMU virtual machines on this machine.
type Platform struct {
	dataDir    string
	artifacts  kiln.ArtifactStore
	log        *slog.Logger
	accel      string
	mem, cpus  int
	diskSize   int64
	supervisor []string
	qemu, img  string
	firmware   string
	boot       string
}

// New checks cfg and the tools the platform needs and returns the platform.
func New(cfg Config) (*Platform, error) {
	if cfg.DataDir == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "data_dir", "the VM platform needs a data directory")
	}
	if cfg.Artifacts == nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts", "the VM platform needs an artifact store")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("vm platform: %w", err)
	}
	p := &Platform{
		dataDir:    filepath.Join(dataDir, "vm"),
		artifacts:  cfg.Artifacts,
		log:        cfg.Logger,
		mem:        cfg.MemoryMiB,
		cpus:       cfg.CPUs,
		diskSize:   cfg.DiskSize,
		supervisor: cfg.Supervisor,
	}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.mem <= 0 {
		p.mem = 1024
	}
	if p.cpus <= 0 {
		p.cpus = DefaultCPUs()
	}
	if p.qemu, p.img, err = lookQemu(); err != nil {
		return nil, err
	}
	if p.firmware, err = findFirmware(); err != nil {
		return nil, err
	}
	accel, why, err := chooseAccel(cfg.Accel)
	if err != nil {
		return nil, err
	}
	p.accel = accel
	if p.boot, err = chooseBoot(cfg.Boot, accel); err != nil {
		return nil, err
	}
	if why != "" {
		p.log.Info("VM platform uses TCG (emulation, slower)", "why", why)
	}
	if len(p.supervisor) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("vm platform: find own executable: %w", err)
		}
		p.supervisor = []string{exe, "__vm-supervise"}
	}
	for _, d := range []string{"images", "instances"} {
		if err := os.MkdirAll(filepath.Join(p.dataDir, d), 0o700); err != nil {
			return nil, fmt.Errorf("vm platform: %w", err)
		}
	}
	return p, nil
}

// Name is "vm".
func (p *Platform) Name() string { return "vm" }

var _ kiln.BootFormats = (*Platform)(nil)

// BootFormats says the VM platform boots a version's disk image, qcow2
// preferred (launch.Launcher picks it; kiln.BootFormats).
func (p *Platform) BootFormats() []kiln.ArtifactFormat {
	return []kiln.ArtifactFormat{kiln.FormatQCOW2, kiln.FormatRaw}
}

// Accel is the accelerator guests run with: "kvm" or "tcg".
func (p *Platform) Accel() string { return p.accel }

// CPUs is how many virtual CPUs a guest gets.
func (p *Platform) CPUs() int { return p.cpus }

// Boot says how VMs boot: BootFirmware or BootDirect.
func (p *Platform) Boot() string { return p.boot }

var idRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

func validateID(field, id string) error {
	if !idRE.MatchString(id) || strings.Contains(id, "..") {
		return kiln.FieldErrorf(kiln.EINVALID, field, "instance id %q must be 1–128 letters, digits, '.', '_' or '-', starting with a letter or digit", id)
	}
	return nil
}

func validatePort(i int, pf kiln.PortForward) error {
	field := "ports[" + strconv.Itoa(i) + "]"
	host, port, err := net.SplitHostPort(pf.Host)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, field, "host address %q is not HOST:PORT; write e.g. 127.0.0.1:8080", pf.Host)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return kiln.FieldErrorf(kiln.EINVALID, field, "host address %q is not an IPv4 loopback address; the VM platform forwards only from loopback, e.g. 127.0.0.1:8080", pf.Host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return kiln.FieldErrorf(kiln.EINVALID, field, "host port %q is not a port number (0 picks a free one)", port)
	}
	if pf.Guest < 1 || pf.Guest > 65535 {
		return kiln.FieldErrorf(kiln.EINVALID, field, "guest port %d is not between 1 and 65535", pf.Guest)
	}
	return nil
}

func (p *Platform) instanceDir(id string) string {
	return filepath.Join(p.dataDir, "instances", id)
}

// Launch boots an instance on a copy-on-write overlay of the version's
// disk image. Its timeout covers the boot, not the one-time copy of a new
// artifact into the image cache, which only ctx bounds.
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
		for i, a := range spec.Config.Egress {
			if err := validateEgress(i, a); err != nil {
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
	unlockCache, err := p.cacheLock(unix.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	defer unlockCache()
	base, format, err := p.image(ctx, spec.Artifact.Digest)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	var direct *directBoot
	if p.boot == BootDirect {
		if direct, err = p.bootFiles(ctx, base, format); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("launch %s: %w", spec.ID, ctx.Err())
			}
			// Not a disk kiln built (no systemd-boot entry): its own
			// boot loader boots it, through the firmware.
			p.log.Warn("booting through the firmware: the disk's boot entry cannot be read for a direct boot", "id", spec.ID, "err", err)
		}
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
	lock, err := instancedir.TryLock(dir)
	if err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	if lock == nil {
		return nil, kiln.FieldErrorf(kiln.ECONFLICT, "id", "instance %s is being launched by another kiln process", spec.ID)
	}
	defer lock.Close()

	args := []string{"create", "-q", "-f", "qcow2", "-b", base, "-F", format, filepath.Join(dir, diskFile)}
	if p.diskSize > 0 {
		args = append(args, strconv.FormatInt(p.diskSize, 10))
	}
	if out, err := exec.CommandContext(ctx, p.img, args...).CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, ctx.Err())
		}
		return nil, fmt.Errorf("launch %s: qemu-img create: %w: %s", spec.ID, err, bytes.TrimSpace(out))
	}
	rec := &record{
		ID: spec.ID, Name: spec.Name, Digest: spec.Artifact.Digest, Base: base,
		State: kiln.InstanceStarting, Ports: spec.Ports, Accel: p.accel, LaunchedAt: time.Now().UTC(),
		Direct: direct,
	}
	if spec.Config != nil && len(spec.Config.Credentials) > 0 {
		if rec.Credentials, rec.CredentialHashes, err = instancedir.WriteCredentials(dir, spec.Config, maxCredentialName); err != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
		}
		rec.ConfigDigest = spec.Config.Digest
	}
	if spec.Config != nil {
		rec.Egress = spec.Config.Egress
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
	lock.Close()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, ctx.Err())
		}
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	state, failed, err := p.waitBoot(bootCtx, spec.ID, dir, timeout)
	if rerr := instancedir.RemoveCredentials(dir); rerr != nil && err == nil {
		err = fmt.Errorf("launch %s: remove the host copy of its configuration: %w", spec.ID, rerr)
	}
	p.log.Debug("boot finished", "id", spec.ID, "elapsed", time.Since(t0))
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, ctx.Err())
		}
		return nil, err
	}
	if rec, err = readRecord(dir); err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	p.log.Info("instance running", "id", spec.ID, "state", state, "failed_units", failed, "ports", rec.Ports, "accel", rec.Accel, "boot", time.Since(t0).Round(time.Millisecond))
	return &kiln.LaunchResult{State: state, FailedUnits: failed, Ports: rec.Ports}, nil
}

// image returns the version's disk image in the platform's cache (never
// written: overlays are stacked on it) and its format, copying the
// artifact there first if needed and checking its digest on the way.
func (p *Platform) image(ctx context.Context, digest string) (string, string, error) {
	hexd := strings.TrimPrefix(digest, "sha256:")
	dst := filepath.Join(p.dataDir, "images", hexd)
	if f, err := os.Open(dst); err == nil {
		defer f.Close()
		return dst, sniffFormat(f), nil
	}
	if format, ok, err := p.linkImage(ctx, digest, dst); ok || err != nil {
		return dst, format, err
	}
	r, err := p.artifacts.Open(ctx, digest)
	if err != nil {
		return "", "", fmt.Errorf("open artifact %s: %w", digest, err)
	}
	defer r.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+hexd[:12]+"-")
	if err != nil {
		return "", "", fmt.Errorf("image cache: %w", err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), r); err != nil {
		return "", "", fmt.Errorf("copy artifact %s: %w", digest, err)
	}
	if err := r.Close(); err != nil {
		return "", "", fmt.Errorf("copy artifact %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return "", "", kiln.Errorf(kiln.EINTERNAL, "artifact %s is corrupt: its content hashes to %s; rebuild the version or restore the artifact store", digest, got)
	}
	if err := tmp.Chmod(0o400); err != nil {
		return "", "", fmt.Errorf("image cache: %w", err)
	}
	format := sniffFormat(tmp)
	if format == "" {
		return "", "", notDiskImage(digest)
	}
	if err := tmp.Close(); err != nil {
		return "", "", fmt.Errorf("image cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", "", fmt.Errorf("image cache: %w", err)
	}
	return dst, format, nil
}

// localArtifacts is an artifact store that keeps each artifact as a file
// of this machine (artifact.Store).
type localArtifacts interface {
	Path(digest string) (string, error)
}

// linkImage puts a local store's artifact into the image cache as a hard
// link instead of a copy, when both are on one filesystem (the store's
// files are read-only and never rewritten), and checks its digest by
// reading it once. ok is false when it cannot link (another store or
// filesystem): the caller copies. A copy wrote the whole disk image again
// and hashed it twice (the store's reader and the cache's), 24 s of a
// first launch at load 15–19 for an 800 MB qcow2.
func (p *Platform) linkImage(ctx context.Context, digest, dst string) (format string, ok bool, err error) {
	ls, isLocal := p.artifacts.(localArtifacts)
	if !isLocal {
		return "", false, nil
	}
	src, err := ls.Path(digest)
	if err != nil {
		return "", false, nil
	}
	hexd := strings.TrimPrefix(digest, "sha256:")
	// A fresh name (concurrent launches of one image share the cache
	// lock), which the link takes over.
	t, err := os.CreateTemp(filepath.Dir(dst), ".tmp-"+hexd[:12]+"-link-")
	if err != nil {
		return "", false, fmt.Errorf("image cache: %w", err)
	}
	tmp := t.Name()
	t.Close()
	if err := os.Remove(tmp); err != nil {
		return "", false, fmt.Errorf("image cache: %w", err)
	}
	if err := os.Link(src, tmp); err != nil {
		return "", false, nil
	}
	defer os.Remove(tmp)
	f, err := os.Open(tmp)
	if err != nil {
		return "", false, fmt.Errorf("image cache: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || fi.Mode().Perm()&0o222 != 0 {
		// A store that keeps writable files: copy instead.
		return "", false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", false, fmt.Errorf("read artifact %s: %w", digest, err)
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != digest {
		return "", false, kiln.Errorf(kiln.EINTERNAL, "artifact %s is corrupt: its content hashes to %s; rebuild the version or restore the artifact store", digest, got)
	}
	format = sniffFormat(f)
	if format == "" {
		return "", false, notDiskImage(digest)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return "", false, fmt.Errorf("image cache: %w", err)
	}
	return format, true, nil
}

func notDiskImage(digest string) error {
	return kiln.Errorf(kiln.EINVALID, "artifact %s is not a disk image (neither qcow2 nor a raw disk with a partition table): the VM platform boots disk images; give the image line a disk format (formats = [\"qcow2\"]) and launch a version built with it", digest)
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// sniffFormat tells qcow2 (magic "QFI\xfb") from a raw disk (a partition
// table: the MBR signature 0x55AA, which a GPT disk's protective MBR has
// too); "" for anything else (a root filesystem tarball).
func sniffFormat(f *os.File) string {
	var b [512]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		return ""
	}
	switch {
	case string(b[:4]) == "QFI\xfb":
		return "qcow2"
	case b[510] == 0x55 && b[511] == 0xaa:
		return "raw"
	}
	return ""
}

// startSupervisor starts the supervisor detached (own session, output to
// supervisor.log), hands it the locked supervisor.lock, and waits until it
// reports that QEMU runs.
func (p *Platform) startSupervisor(ctx context.Context, dir string, lock *os.File) error {
	argv := append(append([]string{}, p.supervisor...),
		"--dir", dir, "--firmware", p.firmware, "--qemu", p.qemu,
		"--memory", strconv.Itoa(p.mem), "--cpus", strconv.Itoa(p.cpus))
	return instancedir.StartSupervisor(ctx, dir, argv, lock)
}

// waitBoot waits until the guest's systemd has finished booting, asking
// through the agent (which answers once the guest's early boot started
// it).
func (p *Platform) waitBoot(ctx context.Context, id, dir string, timeout time.Duration) (kiln.InstanceState, []string, error) {
	last := ""
	for {
		var out bytes.Buffer
		_, err := p.Exec(ctx, id, []string{"systemctl", "is-system-running", "--wait"}, kiln.ExecIO{Stdout: &out})
		if s := strings.TrimSpace(out.String()); s != "" {
			last = s
		}
		if err == nil {
			switch last {
			case "running":
				return kiln.InstanceRunning, nil, nil
			case "degraded":
				units, err := p.failedUnits(ctx, id)
				return kiln.InstanceDegraded, units, err
			case "maintenance", "stopping":
				return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not boot: systemd reports %q; last lines of its serial console:\n%s", id, last, lastLines(filepath.Join(dir, consoleFile), 20))
			}
		}
		if rec, rerr := readRecord(dir); rerr == nil && rec.terminal() {
			return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s ended while booting (%s); last lines of its serial console:\n%s", id, rec.Reason, lastLines(filepath.Join(dir, consoleFile), 20))
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				why := "its guest agent never answered"
				if last != "" {
					why = fmt.Sprintf("systemd last said %q", last)
				}
				return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "instance %s did not finish booting within %s (%s); raise the launch timeout, or read the last lines of its serial console:\n%s", id, timeout, why, lastLines(filepath.Join(dir, consoleFile), 20))
			}
			return "", nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

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

func (p *Platform) load(id string) (*record, bool, error) {
	if err := validateID("id", id); err != nil {
		return nil, false, err
	}
	dir := p.instanceDir(id)
	rec, err := readRecord(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, kiln.Errorf(kiln.ENOTFOUND, "instance %s does not exist on the VM platform", id)
	}
	if err != nil {
		return nil, false, err
	}
	live, err := instancedir.Supervised(dir)
	if err != nil {
		return nil, false, err
	}
	return rec, live, nil
}

// Exec runs argv inside the guest as root with a minimal environment,
// through the guest agent on the virtio-serial port: no network, no SSH.
// Cancelling ctx kills the command inside.
func (p *Platform) Exec(ctx context.Context, id string, argv []string, stdio kiln.ExecIO) (int, error) {
	if len(argv) == 0 {
		return -1, kiln.FieldErrorf(kiln.EINVALID, "argv", "no command to run")
	}
	rec, live, err := p.load(id)
	if err != nil {
		return -1, err
	}
	if !live || rec.State != kiln.InstanceRunning || !instancedir.Alive(rec.QemuPID, rec.QemuStart) {
		state := rec.State
		if !rec.terminal() && (!live || !instancedir.Alive(rec.QemuPID, rec.QemuStart)) {
			state = kiln.InstanceCrashed
		}
		return -1, kiln.Errorf(kiln.ECONFLICT, "instance %s is %s; commands run only in a running instance", id, state)
	}
	c, err := dialUnix(ctx, filepath.Join(p.instanceDir(id), execSocket))
	if err != nil {
		return -1, kiln.Errorf(kiln.ECONFLICT, "instance %s does not take commands now: %v", id, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	fw := &frameWriter{w: c}
	req, _ := json.Marshal(openRequest{Argv: argv})
	if err := fw.write(frameOpen, 0, req); err != nil {
		return -1, p.execErr(ctx, id, err)
	}
	go func() {
		if stdio.Stdin != nil {
			buf := make([]byte, 32<<10)
			for {
				n, err := stdio.Stdin.Read(buf)
				if n > 0 {
					if fw.write(frameStdin, 0, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					break
				}
			}
		}
		_ = fw.write(frameStdin, 0, nil)
	}()
	for {
		f, err := readFrame(c)
		if err != nil {
			return -1, p.execErr(ctx, id, err)
		}
		switch f.typ {
		case frameStdout:
			if stdio.Stdout != nil {
				_, _ = stdio.Stdout.Write(f.payload)
			}
		case frameStderr:
			if stdio.Stderr != nil {
				_, _ = stdio.Stderr.Write(f.payload)
			}
		case frameExit:
			code, err := strconv.Atoi(string(f.payload))
			if err != nil {
				return -1, fmt.Errorf("exec in %s: bad exit status %q", id, f.payload)
			}
			return code, nil
		case frameError:
			return -1, kiln.Errorf(kiln.ECONFLICT, "exec in %s: %s", id, f.payload)
		}
	}
}

func (p *Platform) execErr(ctx context.Context, id string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("exec in %s: %w", id, ctx.Err())
	}
	return kiln.Errorf(kiln.EUNAVAILABLE, "exec in %s: the connection to its supervisor broke: %v", id, err)
}

// dialUnix connects to a Unix socket whose path may be longer than the 107
// bytes sockaddr_un holds, through the directory's /proc/self/fd entry.
func dialUnix(ctx context.Context, path string) (net.Conn, error) {
	var d net.Dialer
	if len(path) < 100 {
		return d.DialContext(ctx, "unix", path)
	}
	dirf, err := os.Open(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer dirf.Close()
	return d.DialContext(ctx, "unix", fmt.Sprintf("/proc/self/fd/%d/%s", dirf.Fd(), filepath.Base(path)))
}

// State reports the instance's state: the supervisor's record, corrected
// by what is alive, and for a running instance what its systemd says now.
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
		return kiln.InstanceCrashed
	case rec.State != kiln.InstanceRunning:
		return rec.State
	case !instancedir.Alive(rec.QemuPID, rec.QemuStart):
		return kiln.InstanceCrashed // the supervisor is about to record it
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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

// Stop powers the guest down (ACPI power button, and systemctl poweroff
// through the agent), killing QEMU if it has not ended in time, and waits.
// Stopping a stopped or crashed instance does nothing.
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

// settle takes the lock of an instance whose supervisor is gone, kills a
// QEMU it left (it cannot outlive its supervisor, but a supervisor from
// before a crash of this machine's kernel…) and records an end.
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
			return nil
		}
		return err
	}
	// The supervisor releases the lock just before it exits: let it finish.
	waitExit(supervisorOf(dir, rec), dir, 2*time.Second)
	if !instancedir.KillWait(rec.QemuPID, rec.QemuStart, killTimeout) {
		return kiln.Errorf(kiln.EINTERNAL, "QEMU of instance %s (pid %d) survived SIGKILL", id, rec.QemuPID)
	}
	for _, f := range []string{agentSocket, execSocket, qmpSocket} {
		_ = os.Remove(filepath.Join(dir, f))
	}
	if !rec.terminal() {
		rec.State = kiln.InstanceCrashed
		rec.Reason = reason
		rec.EndedAt = time.Now().UTC()
		return writeRecord(dir, rec)
	}
	return nil
}

// waitExit waits until pid is no longer a process whose command line names
// dir (it exited, or the PID is another process's now).
func waitExit(pid int, dir string, timeout time.Duration) {
	if pid <= 0 {
		return
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte(dir)) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Destroy kills the guest at once (its disk is deleted, so there is
// nothing to shut down cleanly) and removes its overlay and files. An
// unknown instance is not an error.
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
			p.log.Warn("killing supervisor", "id", id, "err", err)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			if err := p.waitUnsupervised(ctx, id, killTimeout); err != nil {
				return fmt.Errorf("destroy %s: %w", id, err)
			}
		}
	} else if live {
		if err := p.waitUnsupervised(ctx, id, killTimeout); err != nil {
			return fmt.Errorf("destroy %s: %w", id, err)
		}
	}
	if err := p.settle(id, "destroyed"); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	p.log.Info("instance destroyed", "id", id)
	return nil
}

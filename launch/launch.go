package launch

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

// Launcher launches instances of versions on one platform.
type Launcher struct {
	// Registry finds versions and their signed provenance.
	Registry kiln.Registry
	Platform kiln.Platform
	// Inventory records each instance; nil records none.
	Inventory kiln.Inventory
	// Key is the public half of the provenance signing key. A version
	// whose signed provenance does not verify against it is refused; with
	// no key every launch is refused.
	Key crypto.PublicKey
	// Trusted are further keys whose signatures are accepted: keys
	// `kiln key rotate` retired, so versions they signed still launch.
	Trusted []crypto.PublicKey
	Logger  *slog.Logger
	Clock   kiln.Clock // time.Now when nil
	// Getenv reads the environment variables secrets refer to; os.Getenv
	// when nil.
	Getenv func(string) string
	// Audit records forced launches of revoked versions; nil records
	// none (the launch is still logged).
	Audit kiln.AuditLog
}

// Request is one instance to launch, with what it is given at creation.
type Request struct {
	Version kiln.VersionRef
	// ID names the instance on the platform and in the inventory; Name is
	// its display name (ID when empty).
	ID, Name    string
	Environment string
	Labels      map[string]string
	// Ports forwards host loopback addresses into the instance.
	Ports []kiln.PortForward
	// Timeout bounds the boot; 0 is the platform's default.
	Timeout time.Duration
	// Gate is the caller's status rule; nil lets any built version launch.
	Gate Gate
	// Config is resolved (read) just before the boot and delivered to the
	// instance; its digest and source are recorded. nil gives none.
	Config *Config
	// Force launches a revoked version all the same (`kiln instance
	// launch --force`); the launch is audited.
	Force bool
	// Platform names the driver to boot on (kiln.LaunchPlatforms); empty
	// is the Launcher's platform's default. The instance records it.
	Platform string
}

// Result is a launched, recorded instance.
type Result struct {
	// Version is the version as it was checked.
	Version *kiln.Version
	// Instance is the inventory record (also when there is no inventory).
	Instance *kiln.Instance
	// Launch is what the platform reported: state, failed units, ports.
	Launch *kiln.LaunchResult
}

// BootError is a launch the platform did not carry out (the instance did
// not boot, or the boot was cut short). The instance was destroyed again.
type BootError struct {
	ID  string
	Err error
}

func (e *BootError) Error() string { return e.Err.Error() }
func (e *BootError) Unwrap() error { return e.Err }

// destroyTimeout bounds the destruction of an instance whose launch
// failed; it runs on a context that survives the caller's cancellation.
const destroyTimeout = 2 * time.Minute

// Check finds the version ref and vets it for launching: gate's rule, not
// revoked (kiln.RevokedError), an artifact kiln made (not an external
// one such as a Packer import), and signed provenance that verifies
// against Key or a Trusted key (the artifact's content is checked by the
// platform when it unpacks it). It returns the version as checked.
func (l *Launcher) Check(ctx context.Context, ref kiln.VersionRef, gate Gate) (*kiln.Version, error) {
	return l.check(ctx, ref, gate, false)
}

// check is Check; force lets a revoked version through.
func (l *Launcher) check(ctx context.Context, ref kiln.VersionRef, gate Gate, force bool) (*kiln.Version, error) {
	v, err := l.Registry.FindVersion(ctx, ref)
	if err != nil {
		return nil, err
	}
	if gate != nil {
		if err := gate(v); err != nil {
			return nil, err
		}
	}
	if v.Revoked() && !force {
		return nil, kiln.RevokedError(v)
	}
	if v.Provenance.Artifact == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact recorded; only built versions can be launched", ref)
	}
	if v.Provenance.Artifact.External() {
		return nil, kiln.Errorf(kiln.EINVALID, "kiln cannot launch an external artifact: %s refers to %s, which kiln did not build and does not hold; launch it with the tool that made it", ref, v.Provenance.Artifact.Ref)
	}
	if _, err := l.Artifact(v); err != nil {
		return nil, err
	}
	if l.Key == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "refusing to launch %s: this kiln has no key to verify signed provenance with", ref)
	}
	keys := append([]crypto.PublicKey{l.Key}, l.Trusted...)
	if err := sign.CheckVersion(ctx, l.Registry, nil, keys, v, false); err != nil {
		return nil, fmt.Errorf("refusing to launch: %w", err)
	}
	return v, nil
}

// Artifact returns the artifact of v that the launcher's platform boots:
// the first of its formats (kiln.PlatformFormats) that v has — the root
// filesystem on the local platform, the qcow2 (or raw) disk image on the
// VM platform. A version without one is EINVALID, saying how to get one.
func (l *Launcher) Artifact(v *kiln.Version) (*kiln.Artifact, error) {
	formats := kiln.PlatformFormats(l.Platform)
	for _, f := range formats {
		if a, err := v.Artifact(f); err == nil {
			return a, nil
		}
	}
	if formats[0].Disk() {
		names := make([]string, len(formats))
		for i, f := range formats {
			names[i] = string(f)
		}
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no disk image; add formats = [\"%s\"] to its image line and build again (the %s platform boots %s disk images, not the root filesystem)",
			v.Ref(), formats[0], l.Platform.Name(), strings.Join(names, " or "))
	}
	return nil, kiln.Errorf(kiln.EINVALID, "%s has no %s artifact, which the %s platform boots", v.Ref(), formats[0], l.Platform.Name())
}

// Launch checks the version (see Check), boots it, and records the
// instance. A failed boot is a *BootError; an instance that booted but
// could not be recorded is destroyed again. Cancelling ctx destroys what
// was started.
func (l *Launcher) Launch(ctx context.Context, req Request) (*Result, error) {
	if err := l.checkPlatform(req.Platform); err != nil {
		return nil, err
	}
	v, err := l.check(ctx, req.Version, req.Gate, req.Force)
	if err != nil {
		return nil, err
	}
	if v.Revoked() {
		if err := l.auditForced(ctx, v, req.ID); err != nil {
			return nil, err
		}
	}
	name := req.Name
	if name == "" {
		name = req.ID
	}
	cfg, err := req.Config.Resolve(req.Environment, req.ID, l.Getenv)
	if err != nil {
		return nil, fmt.Errorf("configuration for %s: %w", req.ID, err)
	}
	art, err := l.Artifact(v)
	if err != nil {
		return nil, err
	}
	res, err := l.Platform.Launch(ctx, kiln.LaunchSpec{
		ID: req.ID, Name: name, Version: req.Version, Artifact: *art, Ports: req.Ports, Timeout: req.Timeout, Config: cfg,
		Platform: req.Platform,
	})
	if err != nil {
		return nil, l.undo(ctx, req.ID, &BootError{ID: req.ID, Err: err})
	}
	platform := req.Platform
	if platform == "" {
		platform = l.Platform.Name()
	}
	inst := &kiln.Instance{ID: req.ID, Name: name, Version: req.Version, Environment: req.Environment, Platform: platform,
		State: res.State, Labels: req.Labels, LaunchedAt: l.now(), LaunchedByKiln: true}
	if cfg != nil {
		inst.ConfigDigest, inst.ConfigSource = cfg.Digest, cfg.Source
		inst.AgentTokenSHA256 = cfg.AgentTokenSHA256
	}
	if len(res.Ports) > 0 {
		inst.Address = res.Ports[0].Host
	}
	if l.Inventory != nil {
		if err := l.Inventory.CreateInstance(ctx, inst); err != nil {
			return nil, l.undo(ctx, req.ID, fmt.Errorf("instance %s was launched but could not be recorded, so it was destroyed again: %w", req.ID, err))
		}
	}
	return &Result{Version: v, Instance: inst, Launch: res}, nil
}

// router is a Platform that routes to several drivers by name
// (platform/set); Get opens one, or says why it cannot run here.
type router interface {
	Get(name string) (kiln.Platform, error)
}

// checkPlatform refuses a platform name that is unknown, that Platform
// does not route to, or whose driver cannot run on this machine (QEMU
// missing…), before anything is started.
func (l *Launcher) checkPlatform(name string) error {
	if err := kiln.ValidatePlatform("platform", name); err != nil {
		return err
	}
	if name == "" || name == l.Platform.Name() {
		return nil
	}
	r, ok := l.Platform.(router)
	if !ok {
		return kiln.FieldErrorf(kiln.EINVALID, "platform", "this kiln launches on the %s platform only, not %s", l.Platform.Name(), name)
	}
	_, err := r.Get(name)
	return err
}

// auditForced records the forced launch of revoked version v as
// instance id, before the platform is asked: a launch that cannot be
// audited does not happen.
func (l *Launcher) auditForced(ctx context.Context, v *kiln.Version, id string) error {
	detail := "forced launch of a revoked version as instance " + id
	if r := v.Revocation; r != nil {
		if r.Through != nil {
			detail += fmt.Sprintf(" (revoked through %s: %s)", r.Through, orNone(r.Reason))
		} else {
			detail += fmt.Sprintf(" (revoked: %s)", orNone(r.Reason))
		}
	}
	l.log().Warn("launching a revoked version (forced)", "version", v.Ref().String(), "instance", id)
	if l.Audit == nil {
		return nil
	}
	if err := l.Audit.AppendAudit(ctx, &kiln.AuditEntry{Action: "instance.launch.forced", Target: v.Ref().String(), Detail: detail}); err != nil {
		return fmt.Errorf("refusing the forced launch of %s: it could not be audited: %w", v.Ref(), err)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// undo destroys an instance whose launch failed with err, and returns err
// with what the destruction failed with.
func (l *Launcher) undo(ctx context.Context, id string, err error) error {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), destroyTimeout)
	defer cancel()
	if derr := l.Platform.Destroy(dctx, id); derr != nil {
		l.log().Error("destroy an instance whose launch failed", "instance", id, "err", derr)
		return errors.Join(err, fmt.Errorf("destroy %s: %w", id, derr))
	}
	return err
}

// Destroy destroys an instance and records it destroyed with reason (an
// instance the inventory does not know is fine). Callers that clean up
// after cancellation pass a context that survives it.
func (l *Launcher) Destroy(ctx context.Context, id, reason string) error {
	if err := l.Platform.Destroy(ctx, id); err != nil {
		return fmt.Errorf("destroy %s: %w", id, err)
	}
	if l.Inventory != nil {
		if _, err := l.Inventory.SetInstanceState(ctx, id, kiln.InstanceDestroyed, reason); err != nil && kiln.ErrorCode(err) != kiln.ENOTFOUND {
			return fmt.Errorf("record %s destroyed: %w", id, err)
		}
	}
	return nil
}

func (l *Launcher) now() time.Time {
	if l.Clock == nil {
		return time.Now()
	}
	return l.Clock()
}

func (l *Launcher) log() *slog.Logger {
	if l.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.Logger
}

package memory

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/kiln-project/kiln"
)

// Platform is a kiln.Platform in memory. The zero value is not usable;
// call New. Set the exported fields before the first call.
type Platform struct {
	// Artifacts, when set, is where Launch looks the artifact up: a digest
	// it does not hold is ENOTFOUND, as on a real platform. Nil accepts
	// any valid digest.
	Artifacts kiln.ArtifactStore
	// Launching, when set, is called as each Launch begins, once the
	// instance is recorded as starting: a test blocks in it to act while a
	// launch is under way. Launch fails with its error and forgets the
	// instance, as a failed launch must.
	Launching func(ctx context.Context, id string) error
	// Destroying, when set, is called as each Destroy begins; Destroy
	// fails with its error and keeps the instance.
	Destroying func(ctx context.Context, id string) error
	// Formats, when set, are the artifact formats the platform says it
	// boots (kiln.BootFormats), to stand in for a VM platform; nil: the
	// root filesystem, like the local platform.
	Formats []kiln.ArtifactFormat

	mu        sync.Mutex
	instances map[string]kiln.InstanceState
	artifacts map[string]string // instance id -> digest launched
	destroyed []string
}

var _ kiln.Platform = (*Platform)(nil)

// New returns a platform without instances.
func New() *Platform { return &Platform{instances: map[string]kiln.InstanceState{}} }

// BootFormats returns Formats (kiln.BootFormats).
func (p *Platform) BootFormats() []kiln.ArtifactFormat { return p.Formats }

// LaunchedArtifact returns the digest of the artifact instance id was
// launched from ("" for an unknown instance).
func (p *Platform) LaunchedArtifact(id string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.artifacts[id]
}

// Name is "memory".
func (p *Platform) Name() string { return "memory" }

// Launch records the instance as running. Forwards from port 0 get port 1,
// where nothing listens: the platform forwards nothing.
func (p *Platform) Launch(ctx context.Context, spec kiln.LaunchSpec) (*kiln.LaunchResult, error) {
	if err := kiln.ValidateInstanceID("id", spec.ID); err != nil {
		return nil, err
	}
	if err := kiln.ValidateDigest("artifact.digest", spec.Artifact.Digest); err != nil {
		return nil, err
	}
	ports := make([]kiln.PortForward, len(spec.Ports))
	for i, pf := range spec.Ports {
		bound, err := bind(i, pf)
		if err != nil {
			return nil, err
		}
		ports[i] = bound
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	if p.Artifacts != nil {
		if _, err := p.Artifacts.Stat(ctx, spec.Artifact.Digest); err != nil {
			return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
		}
	}

	p.mu.Lock()
	if _, ok := p.instances[spec.ID]; ok {
		p.mu.Unlock()
		return nil, kiln.FieldErrorf(kiln.ECONFLICT, "id", "instance %s exists already; destroy it first or choose another id", spec.ID)
	}
	p.instances[spec.ID] = kiln.InstanceStarting
	if p.artifacts == nil {
		p.artifacts = map[string]string{}
	}
	p.artifacts[spec.ID] = spec.Artifact.Digest
	p.mu.Unlock()

	err := ctx.Err()
	if err == nil && p.Launching != nil {
		err = p.Launching(ctx, spec.ID)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		delete(p.instances, spec.ID)
		return nil, fmt.Errorf("launch %s: %w", spec.ID, err)
	}
	if p.instances[spec.ID] != kiln.InstanceStarting {
		return nil, kiln.Errorf(kiln.ECONFLICT, "instance %s was destroyed while it launched", spec.ID)
	}
	p.instances[spec.ID] = kiln.InstanceRunning
	return &kiln.LaunchResult{State: kiln.InstanceRunning, Ports: ports}, nil
}

// bind checks a forward as the local platform does and picks its port.
func bind(i int, pf kiln.PortForward) (kiln.PortForward, error) {
	field := "ports[" + strconv.Itoa(i) + "]"
	host, port, err := net.SplitHostPort(pf.Host)
	if err != nil {
		return pf, kiln.FieldErrorf(kiln.EINVALID, field, "host address %q is not HOST:PORT; write e.g. 127.0.0.1:8080", pf.Host)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return pf, kiln.FieldErrorf(kiln.EINVALID, field, "host address %q is not a loopback address; forward only from loopback, e.g. 127.0.0.1:8080", pf.Host)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return pf, kiln.FieldErrorf(kiln.EINVALID, field, "host port %q is not a port number (0 picks a free one)", port)
	}
	if pf.Guest < 1 || pf.Guest > 65535 {
		return pf, kiln.FieldErrorf(kiln.EINVALID, field, "guest port %d is not between 1 and 65535", pf.Guest)
	}
	if n == 0 {
		pf.Host = net.JoinHostPort(host, "1")
	}
	return pf, nil
}

// Exec runs nothing: an instance in memory has nothing to run a command
// in. It answers ENOTFOUND and ECONFLICT as the contract says, EINVALID
// for a running instance.
func (p *Platform) Exec(_ context.Context, id string, _ []string, _ kiln.ExecIO) (int, error) {
	st, err := p.State(context.Background(), id)
	if err != nil {
		return -1, err
	}
	if st != kiln.InstanceRunning {
		return -1, kiln.Errorf(kiln.ECONFLICT, "instance %s is %s; commands run only in a running instance", id, st)
	}
	return -1, kiln.Errorf(kiln.EINVALID, "exec is not supported by the in-memory platform")
}

// State reports the recorded state; ENOTFOUND for an unknown instance.
func (p *Platform) State(_ context.Context, id string) (kiln.InstanceState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.instances[id]
	if !ok {
		return "", kiln.Errorf(kiln.ENOTFOUND, "instance %s not found", id)
	}
	return st, nil
}

// Stop marks the instance stopped; ENOTFOUND for an unknown instance.
func (p *Platform) Stop(_ context.Context, id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.instances[id]; !ok {
		return kiln.Errorf(kiln.ENOTFOUND, "instance %s not found", id)
	}
	p.instances[id] = kiln.InstanceStopped
	return nil
}

// Destroy forgets the instance, after the Destroying hook; an unknown
// instance is not an error.
func (p *Platform) Destroy(ctx context.Context, id string) error {
	if p.Destroying != nil {
		if err := p.Destroying(ctx, id); err != nil {
			return err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.instances, id)
	p.destroyed = append(p.destroyed, id)
	return nil
}

// Crash marks a running instance crashed, as if its process ended behind
// the platform's back.
func (p *Platform) Crash(id string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.instances[id]; !ok {
		return kiln.Errorf(kiln.ENOTFOUND, "instance %s not found", id)
	}
	p.instances[id] = kiln.InstanceCrashed
	return nil
}

// Destroyed lists the id of every Destroy that succeeded, in order,
// unknown ids included.
func (p *Platform) Destroyed() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.destroyed...)
}

package kiln

import (
	"context"
	"io"
	"slices"
	"strings"
	"time"
)

// Platform runs instances booted from image versions' artifacts. The local
// driver uses systemd-nspawn; a cloud driver would use AMIs and launch
// templates. Launch never modifies the stored artifact.
//
// Cancelling ctx during Launch tears down whatever was started.
type Platform interface {
	// Name is the driver's name recorded with each instance ("local").
	Name() string
	// Launch boots an instance and returns once its init system reports
	// the system running or degraded, or with an error after spec.Timeout.
	Launch(ctx context.Context, spec LaunchSpec) (*LaunchResult, error)
	// Exec runs argv inside the instance and returns its exit status.
	Exec(ctx context.Context, id string, argv []string, stdio ExecIO) (int, error)
	// State reports what the platform sees of the instance now.
	State(ctx context.Context, id string) (InstanceState, error)
	// Stop shuts the instance down in an orderly way; it can be destroyed later.
	Stop(ctx context.Context, id string) error
	// Destroy removes the instance and everything it wrote. Destroying an
	// unknown or already destroyed instance is not an error.
	Destroy(ctx context.Context, id string) error
}

// BootFormats is implemented by a Platform that boots something other than
// a version's root filesystem: BootFormats lists the artifact formats it
// boots, preferred first (the VM platform: qcow2, raw). A Platform without
// it boots the root filesystem (FormatRootfs). launch.Launcher picks the
// version's artifact by it and puts it in LaunchSpec.Artifact.
type BootFormats interface {
	BootFormats() []ArtifactFormat
}

// PlatformFormats returns the artifact formats p boots, preferred first.
func PlatformFormats(p Platform) []ArtifactFormat {
	if bf, ok := p.(BootFormats); ok {
		if fs := bf.BootFormats(); len(fs) > 0 {
			return fs
		}
	}
	return []ArtifactFormat{FormatRootfs}
}

// LaunchSpec says what to boot.
type LaunchSpec struct {
	ID      string
	Name    string
	Version VersionRef
	// Artifact is the version's artifact in a format the platform boots
	// (PlatformFormats): its root filesystem, or a disk image.
	Artifact Artifact
	// Ports forwards host loopback addresses into the instance.
	Ports   []PortForward
	Timeout time.Duration
	// Config is delivered to the instance at creation; nil for none.
	Config *LaunchConfig
	// Platform names the driver to boot on where one Platform routes to
	// several (LaunchPlatforms); empty is the default. A single driver
	// ignores it.
	Platform string
}

// LaunchPlatforms are the drivers kiln launches instances on, by Name:
// "local" (systemd-nspawn, the default) and "vm" (QEMU).
var LaunchPlatforms = []string{"local", "vm"}

// ValidatePlatform checks that name is one of LaunchPlatforms; empty is
// the default and valid.
func ValidatePlatform(field, name string) error {
	if name == "" || slices.Contains(LaunchPlatforms, name) {
		return nil
	}
	return FieldErrorf(EINVALID, field, "unknown platform %q; use %s", name, strings.Join(LaunchPlatforms, " or "))
}

// PortForward maps a host address (127.0.0.1:8080) to a port inside the instance.
type PortForward struct {
	Host  string `json:"host"`
	Guest int    `json:"guest"`
}

// LaunchResult is what a launched instance looks like.
type LaunchResult struct {
	State       InstanceState
	FailedUnits []string
	Ports       []PortForward
}

// ExecIO wires a command's standard streams; nil means none.
type ExecIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

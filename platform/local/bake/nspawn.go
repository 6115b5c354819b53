package bake

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
)

// Shell runs a script inside a root directory with
// `systemd-nspawn --register=no --keep-unit --pipe`, as /bin/sh -e. The
// root is not booted: the script is the container's only program, and
// when it ends nspawn ends everything it started.
type Shell struct {
	// Root is the directory to run in (an overlay's merged directory).
	Root string
	// Machine names the container (its hostname while the script runs).
	Machine string
	Env     map[string]string
	// ScriptDir is a host directory where the script is written before
	// being bind-mounted read-only at /run/kiln-step.sh (nspawn's /run is a
	// tmpfs, so nothing of it lands in the image).
	ScriptDir string
	// Binds are host directories bind-mounted read-write into the
	// container, "HOST:CONTAINER"; what is written there stays on the host
	// and is not part of the layer (apt's list and package caches).
	Binds []string
	// ReadOnly are host paths bind-mounted read-only, "HOST:CONTAINER".
	ReadOnly []string
	Stdout   io.Writer
	Stderr   io.Writer
}

// Run runs script. Cancelling ctx sends SIGTERM to nspawn, which kills the
// container's processes; SIGKILL follows after 10 s.
func (s *Shell) Run(ctx context.Context, script []byte) error {
	if _, err := exec.LookPath("systemd-nspawn"); err != nil {
		return fmt.Errorf("systemd-nspawn is not installed (apt-get install systemd-container): %w", err)
	}
	f, err := os.CreateTemp(s.ScriptDir, "step-*.sh")
	if err != nil {
		return fmt.Errorf("write step script: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(script); err != nil {
		f.Close()
		return fmt.Errorf("write step script: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write step script: %w", err)
	}
	hostPath, _ := filepath.Abs(f.Name())
	args := []string{
		"--quiet", "--register=no", "--keep-unit", "--pipe",
		"--as-pid2",
		"--resolv-conf=bind-host", "--timezone=off", "--link-journal=no",
		"--bind-ro=" + hostPath + ":/run/kiln-step.sh",
		"-D", s.Root,
	}
	for _, b := range s.Binds {
		args = append(args, "--bind="+b)
	}
	for _, b := range s.ReadOnly {
		args = append(args, "--bind-ro="+b)
	}
	if s.Machine != "" {
		args = append(args, "--machine="+s.Machine)
	}
	env := map[string]string{
		"DEBIAN_FRONTEND": "noninteractive",
		"LC_ALL":          "C.UTF-8",
		"PATH":            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	for k, v := range s.Env {
		env[k] = v
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--setenv="+k+"="+env[k])
	}
	args = append(args, "/bin/sh", "-e", "/run/kiln-step.sh")
	cmd := exec.CommandContext(ctx, "systemd-nspawn", args...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	terminate(cmd)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	}
	return nil
}

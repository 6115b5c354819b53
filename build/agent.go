package build

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// Where the agent lands inside an image.
const (
	agentPath        = "usr/local/bin/kiln"
	agentServicePath = "etc/systemd/system/kiln-agent.service"
	agentTimerPath   = "etc/systemd/system/kiln-agent.timer"
	agentTimerLink   = "etc/systemd/system/timers.target.wants/kiln-agent.timer"
)

// installAgent copies the kiln binary into root with the check-in service
// and timer, the timer enabled, and returns the source recording which
// binary it was. The service only runs once /etc/default/kiln-agent exists
// (KILN_SERVER, KILN_TOKEN, KILN_ENV), which the operator provides when a
// server is made: secrets never go into images.
func installAgent(root, binary string) (kiln.Source, error) {
	wrap := func(err error) (kiln.Source, error) {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	digest, err := fileDigest(binary)
	if err != nil {
		return wrap(err)
	}
	src := kiln.Source{Kind: kiln.SourceOther, Ref: "kiln-agent:/" + agentPath, Digest: digest}
	// A reheat or an image built on a base usually has this very agent
	// already: leaving identical files alone keeps them out of the new
	// layer (no 30-40 MB copy-up per build).
	dst := filepath.Join(root, agentPath)
	if fi, err := os.Lstat(dst); err == nil && fi.Mode() == 0o755 {
		if d, err := fileDigest(dst); err == nil && d == digest {
			binary = ""
		}
	}
	if binary != "" {
		if err := copyFile(binary, dst, 0o755); err != nil {
			return wrap(err)
		}
	}
	for path, text := range map[string]string{agentServicePath: fleet.AgentService, agentTimerPath: fleet.AgentTimer} {
		p := filepath.Join(root, path)
		if old, err := os.ReadFile(p); err == nil && string(old) == text {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return wrap(err)
		}
		_ = os.Remove(p)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return wrap(err)
		}
	}
	link := filepath.Join(root, agentTimerLink)
	if t, err := os.Readlink(link); err == nil && t == agentTimerTarget {
		return src, nil
	}
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return wrap(err)
	}
	_ = os.Remove(link)
	if err := os.Symlink(agentTimerTarget, link); err != nil {
		return wrap(err)
	}
	return src, nil
}

// agentTimerTarget is what the timers.target.wants link points at.
const agentTimerTarget = "../kiln-agent.timer"

// copyFile replaces dst with a copy of src made with mode.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	_ = os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

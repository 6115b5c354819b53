package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

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

// installAgent copies the kiln binary into the image with the check-in
// service and timer, the timer enabled, and returns the source recording
// which binary it was. The service only runs once /etc/default/kiln-agent
// exists (KILN_SERVER, KILN_TOKEN, KILN_ENV), which the operator provides
// when a server is made: secrets never go into images. Every path is
// resolved inside root, so a symlink in the image never leads a write to
// the host.
func installAgent(root *os.Root, binary string) (kiln.Source, error) {
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
	same := false
	if fi, err := root.Lstat(agentPath); err == nil && fi.Mode() == 0o755 {
		if f, err := root.Open(agentPath); err == nil {
			d, err := readerDigest(f)
			f.Close()
			same = err == nil && d == digest
		}
	}
	if !same {
		in, err := os.Open(binary)
		if err != nil {
			return wrap(err)
		}
		err = replaceInRoot(root, agentPath, in, 0o755)
		in.Close()
		if err != nil {
			return wrap(err)
		}
	}
	for path, text := range map[string]string{agentServicePath: fleet.AgentService, agentTimerPath: fleet.AgentTimer} {
		if old, err := root.ReadFile(path); err == nil && string(old) == text {
			continue
		}
		if err := replaceInRoot(root, path, strings.NewReader(text), 0o644); err != nil {
			return wrap(err)
		}
	}
	if t, err := root.Readlink(agentTimerLink); err == nil && t == agentTimerTarget {
		return src, nil
	}
	if err := root.MkdirAll(filepath.Dir(agentTimerLink), 0o755); err != nil {
		return wrap(err)
	}
	if err := root.Remove(agentTimerLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return wrap(err)
	}
	if err := root.Symlink(agentTimerTarget, agentTimerLink); err != nil {
		return wrap(err)
	}
	return src, nil
}

// replaceInRoot replaces the file at name inside root (a file or a symlink
// there is removed, never written through) with the content of r, creating
// missing parent directories 0755.
func replaceInRoot(root *os.Root, name string, r io.Reader, perm os.FileMode) error {
	if err := root.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	if err := root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil { // not narrowed by the umask
		f.Close()
		return err
	}
	return f.Close()
}

// agentTimerTarget is what the timers.target.wants link points at.
const agentTimerTarget = "../kiln-agent.timer"

package build

import (
	"crypto/sha256"
	"encoding/hex"
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
	in, err := os.Open(binary)
	if err != nil {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	defer in.Close()
	dst := filepath.Join(root, agentPath)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	_ = os.Remove(dst)
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), in); err != nil {
		out.Close()
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	if err := out.Close(); err != nil {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	for path, text := range map[string]string{agentServicePath: fleet.AgentService, agentTimerPath: fleet.AgentTimer} {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
		}
		_ = os.Remove(p)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
		}
	}
	link := filepath.Join(root, agentTimerLink)
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	_ = os.Remove(link)
	if err := os.Symlink("../kiln-agent.timer", link); err != nil {
		return kiln.Source{}, fmt.Errorf("install the kiln agent: %w", err)
	}
	return kiln.Source{Kind: kiln.SourceOther, Ref: "kiln-agent:/" + agentPath, Digest: "sha256:" + hex.EncodeToString(h.Sum(nil))}, nil
}

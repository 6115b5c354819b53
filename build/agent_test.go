package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestInstallAgent(t *testing.T) {
	root := t.TempDir()
	bin := filepath.Join(t.TempDir(), "kiln")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho agent\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := installAgent(root, bin)
	if err != nil {
		t.Fatal(err)
	}
	if src.Kind != kiln.SourceOther || !strings.HasPrefix(src.Digest, "sha256:") || src.Validate("agent") != nil {
		t.Errorf("source = %+v", src)
	}
	fi, err := os.Stat(filepath.Join(root, agentPath))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("agent binary: %v %v", fi, err)
	}
	svc, _ := os.ReadFile(filepath.Join(root, agentServicePath))
	if !strings.Contains(string(svc), "ExecStart=/usr/local/bin/kiln agent checkin") ||
		!strings.Contains(string(svc), "ConditionPathExists=/etc/default/kiln-agent") {
		t.Errorf("service unit:\n%s", svc)
	}
	if target, err := os.Readlink(filepath.Join(root, agentTimerLink)); err != nil || target != "../kiln-agent.timer" {
		t.Errorf("timer not enabled: %q %v", target, err)
	}
	// Installing again (a reheat on top of an image that has it) replaces it.
	if _, err := installAgent(root, bin); err != nil {
		t.Fatalf("second install: %v", err)
	}
}

package build

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	// Installing the same agent again (a reheat on top of an image that has
	// it) leaves the files alone, so they stay out of the new layer.
	before := inodes(t, root)
	again, err := installAgent(root, bin)
	if err != nil {
		t.Fatalf("second install: %v", err)
	}
	if again != src {
		t.Errorf("second install source = %+v, want %+v", again, src)
	}
	if after := inodes(t, root); !maps.Equal(before, after) {
		t.Errorf("identical agent rewritten: inodes %v → %v", before, after)
	}
	// A different agent replaces it.
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho agent 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	next, err := installAgent(root, bin)
	if err != nil {
		t.Fatalf("third install: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, agentPath)); next.Digest == src.Digest || string(got) != "#!/bin/sh\necho agent 2\n" {
		t.Errorf("new agent not installed: %+v %q", next, got)
	}
}

// inodes maps the agent's files to their inode numbers.
func inodes(t *testing.T, root string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, p := range []string{agentPath, agentServicePath, agentTimerPath, agentTimerLink} {
		fi, err := os.Lstat(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		out[p] = fi.Sys().(*syscall.Stat_t).Ino
	}
	return out
}

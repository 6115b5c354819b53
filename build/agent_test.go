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

// openRoot opens dir as an image root for the release step's writes.
func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func TestInstallAgent(t *testing.T) {
	dir := t.TempDir()
	root := openRoot(t, dir)
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
	fi, err := os.Stat(filepath.Join(dir, agentPath))
	if err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("agent binary: %v %v", fi, err)
	}
	svc, _ := os.ReadFile(filepath.Join(dir, agentServicePath))
	if !strings.Contains(string(svc), "ExecStart=/usr/local/bin/kiln agent checkin") ||
		!strings.Contains(string(svc), "ConditionPathExists=|/etc/default/kiln-agent") {
		t.Errorf("service unit:\n%s", svc)
	}
	if target, err := os.Readlink(filepath.Join(dir, agentTimerLink)); err != nil || target != "../kiln-agent.timer" {
		t.Errorf("timer not enabled: %q %v", target, err)
	}
	// Installing the same agent again (a reheat on top of an image that has
	// it) leaves the files alone, so they stay out of the new layer.
	before := inodes(t, dir)
	again, err := installAgent(root, bin)
	if err != nil {
		t.Fatalf("second install: %v", err)
	}
	if again != src {
		t.Errorf("second install source = %+v, want %+v", again, src)
	}
	if after := inodes(t, dir); !maps.Equal(before, after) {
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
	if got, _ := os.ReadFile(filepath.Join(dir, agentPath)); next.Digest == src.Digest || string(got) != "#!/bin/sh\necho agent 2\n" {
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

// The release step writes into an image that may be anyone's tarball (an
// origin artifact): symlinks in it must never lead a write to the host.
func TestInstallAgentStaysInImage(t *testing.T) {
	outside := t.TempDir()
	bin := filepath.Join(t.TempDir(), "kiln")
	must(t, os.WriteFile(bin, []byte("agent"), 0o755))

	// /usr is an absolute link to a host directory: refused, nothing
	// written there.
	dir := t.TempDir()
	must(t, os.Symlink(outside, filepath.Join(dir, "usr")))
	if _, err := installAgent(openRoot(t, dir), bin); err == nil {
		t.Error("installing through a symlink that leaves the image succeeded")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("wrote outside the image: %v", ents)
	}

	// The unit file is a link to a host file: the link is replaced, the
	// host file untouched.
	dir = t.TempDir()
	hostFile := filepath.Join(outside, "victim")
	must(t, os.WriteFile(hostFile, []byte("host data"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "etc/systemd/system"), 0o755))
	must(t, os.Symlink(hostFile, filepath.Join(dir, agentServicePath)))
	if _, err := installAgent(openRoot(t, dir), bin); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(hostFile); string(b) != "host data" {
		t.Errorf("host file overwritten: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, agentServicePath)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("unit file: %v %v, want a regular file", fi, err)
	}
}

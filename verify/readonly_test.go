package verify

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/ci"
)

// TestReadOnlyExec runs commands through the read-only exec on this host
// (the test binary plays kiln, see TestMain): they read what root can
// read, and every kind of change fails — writing a file anywhere,
// remounting, signalling root's processes, regaining root through a
// setuid binary.
func TestReadOnlyExec(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "the read-only exec needs root (a mount namespace, a change of user)")
	}
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(script string) (int, string) {
		t.Helper()
		cmd := exec.CommandContext(context.Background(), exe, ReadOnlyCommand, "--", "/bin/sh", "-c", script)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		code, err := exitCode(cmd.Run())
		if err != nil {
			t.Fatalf("%s: %v", script, err)
		}
		return code, out.String()
	}
	if code, out := run("id -u; id -g; cat " + secret); code != 0 || out != "65534\n65534\nroot only\n" {
		t.Errorf("reading: exit %d, %q; want nobody reading the root-only file", code, out)
	}
	for _, change := range []string{
		"echo x > " + filepath.Join(dir, "new"),
		"echo x >> " + secret,
		"echo x > /tmp/kiln-read-only-test",
		"rm -f " + secret,
		"mount -o remount,rw /",
		"kill -0 1",
		"su -c true root </dev/null",
		"echo 1 > /proc/sys/vm/drop_caches",
	} {
		if code, out := run(change); code == 0 {
			t.Errorf("%q succeeded in the read-only exec: %s", change, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "new")); err == nil {
		t.Error("a file was created through the read-only exec")
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Errorf("the file was changed through the read-only exec: %q", b)
	}
	if code, out := run("echo ok > /dev/null && echo fine"); code != 0 || !strings.Contains(out, "fine") {
		t.Errorf("/dev/null is not writable in the read-only exec: %d %s", code, out)
	}
	if code, _ := run("exit 7"); code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
	// A bare command name is found in the command's PATH, although the
	// first stage clears the environment (`kiln instance exec NAME
	// --read-only -- cat FILE`).
	cmd := exec.CommandContext(context.Background(), exe, ReadOnlyCommand, "--", "cat", secret)
	cmd.Env = []string{}
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "root only\n" {
		t.Errorf("read-only exec of a bare name: %v, %q", err, out)
	}
	cmd = exec.CommandContext(context.Background(), exe, ReadOnlyCommand, "--", "no-such-command-kiln")
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "no-such-command-kiln: not found in /usr/local/sbin") {
		t.Errorf("read-only exec of a missing command: %q", out)
	}
}

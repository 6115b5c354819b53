package vm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// TestLaunchConfig boots a VM with a launch configuration: the guest's
// systemd (bookworm's 252) imports it from fw_cfg into its system
// credentials (what systemd-creds --system and a unit's LoadCredential=
// read), the secret is in no process's command line
// and not left on the host, and a credential changed inside the guest is
// drift.
func TestLaunchConfig(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := context.Background()
	id := "configured"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	secret := "s3cret-" + strings.Repeat("x", 20)
	cfg := &kiln.LaunchConfig{Digest: "sha256:" + strings.Repeat("ab", 32), Source: "test", Credentials: []kiln.Credential{
		{Name: "banner.txt", Data: []byte("hello from prod\n")},
		{Name: "db-password", Data: []byte(secret), Secret: true},
	}}
	seen := make(chan []string, 1)
	go func() { // what ps shows while the VM boots
		var cmdlines []string
		for range 200 {
			procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
			for _, p := range procs {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(e.dir)) {
					cmdlines = append(cmdlines, string(b))
				}
			}
			if len(cmdlines) > 0 {
				break
			}
		}
		seen <- cmdlines
	}()
	if _, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: id, Artifact: e.art, Timeout: bootTimeout(), Config: cfg}); err != nil {
		t.Fatal(err)
	}
	for _, c := range <-seen {
		if strings.Contains(c, secret) {
			t.Errorf("the secret is on a command line: %q", c)
		}
	}
	out := func(argv ...string) string {
		t.Helper()
		var o, eb bytes.Buffer
		code, err := e.p.Exec(ctx, id, argv, kiln.ExecIO{Stdout: &o, Stderr: &eb})
		if err != nil || code != 0 {
			t.Fatalf("%v: %d %v: %s", argv, code, err, eb.String())
		}
		return o.String()
	}
	if got := out("cat", SystemCredentials+"/banner.txt"); got != "hello from prod\n" {
		t.Errorf("banner credential in the guest: %q", got)
	}
	if got := out("cat", SystemCredentials+"/db-password"); got != secret {
		t.Errorf("secret credential in the guest: %q", got)
	}
	if got := out("systemd-creds", "--system", "cat", "banner.txt"); got != "hello from prod\n" {
		t.Errorf("systemd-creds --system cat banner.txt: %q", got)
	}
	if _, err := os.Stat(filepath.Join(e.p.instanceDir(id), "credentials")); !os.IsNotExist(err) {
		t.Errorf("the host copy of the credentials is still there: %v", err)
	}
	if d, err := e.p.CredentialDrift(ctx, id); err != nil || len(d) != 0 {
		t.Fatalf("drift right after launch: %v %v", d, err)
	}
	out("sh", "-c", "mount -o remount,rw "+SystemCredentials+" 2>/dev/null; chmod u+w "+SystemCredentials+"/banner.txt; echo changed > "+SystemCredentials+"/banner.txt")
	d, err := e.p.CredentialDrift(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 1 || d[0].Kind != kiln.DriftChanged || d[0].Path != SystemCredentials+"/banner.txt" {
		t.Errorf("drift after changing banner.txt: %+v", d)
	}
}

package local

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// TestLaunchConfig boots the test image with a unit that reads its
// credential (the generic image side of launch-time configuration) and
// checks that the instance got its configuration, that the host kept no
// copy, and that no secret was on systemd-nspawn's command line.
func TestLaunchConfig(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	// The unit copies its credential and the settings where a test can
	// read them; an application's unit would read them in place.
	unit := "[Unit]\nDescription=reads its credential\n[Service]\nType=oneshot\nRemainAfterExit=yes\n" +
		"LoadCredential=banner.txt\nLoadCredential=db-password\nEnvironmentFile=/run/credentials/@system/kiln-settings\n" +
		"ExecStart=/bin/sh -c 'cat \"$CREDENTIALS_DIRECTORY/banner.txt\" > /run/banner; echo \"$LOG_LEVEL\" > /run/level; wc -c < \"$CREDENTIALS_DIRECTORY/db-password\" > /run/secret-size'\n" +
		"[Install]\nWantedBy=multi-user.target\n"
	art := withUnit(t, e, "kiln-banner.service", unit)

	const secret = "s3cret-never-on-a-command-line"
	cfg := &kiln.LaunchConfig{Digest: "sha256:abc", Source: "test", Credentials: []kiln.Credential{
		{Name: "banner.txt", Data: []byte("hello from prod\n")},
		{Name: "db-password", Data: []byte(secret), Secret: true},
		{Name: "kiln-settings", Data: []byte("LOG_LEVEL=\"debug\"\n")},
	}}
	id := "config-1"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	res, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "cfg", Artifact: *art, Timeout: time.Minute, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != kiln.InstanceRunning {
		t.Fatalf("launch = %+v; want running", res)
	}
	for file, want := range map[string]string{"/run/banner": "hello from prod\n", "/run/level": "debug\n", "/run/secret-size": strconv.Itoa(len(secret)) + "\n"} {
		var out bytes.Buffer
		code, err := e.p.Exec(ctx, id, []string{"cat", file}, kiln.ExecIO{Stdout: &out})
		if err != nil || code != 0 || out.String() != want {
			t.Errorf("%s = %q (exit %d, %v); want %q", file, out.String(), code, err, want)
		}
	}
	// The instance cannot change what it was given.
	code, err := e.p.Exec(ctx, id, []string{"sh", "-c", "echo x > /run/credentials/@system/banner.txt"}, kiln.ExecIO{})
	if err == nil && code == 0 {
		t.Error("the instance could write its credential")
	}
	dir := e.p.instanceDir(id)
	if _, err := os.Stat(filepath.Join(dir, credentialsDir)); !os.IsNotExist(err) {
		t.Errorf("credentials left on the host: %v", err)
	}
	rec, err := readRecord(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ConfigDigest != "sha256:abc" || len(rec.Credentials) != 3 {
		t.Errorf("record: digest %q credentials %v", rec.ConfigDigest, rec.Credentials)
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(rec.NspawnPID) + "/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cmdline, []byte(secret)) || !bytes.Contains(cmdline, []byte("--load-credential=db-password:")) {
		t.Errorf("systemd-nspawn command line: %s", strings.ReplaceAll(string(cmdline), "\x00", " "))
	}

	// Drift over the delivered configuration: none as launched; a changed,
	// a missing and an added credential after root in the instance
	// replaces the credential mount.
	if d, err := e.p.CredentialDrift(ctx, id); err != nil || len(d) != 0 {
		t.Fatalf("credential drift as launched = %+v, %v; want none", d, err)
	}
	tamper := `set -e; cp -a /run/credentials/@system/. /tmp/creds; mount -t tmpfs tmpfs /run/credentials/@system
cp -a /tmp/creds/. /run/credentials/@system/; cd /run/credentials/@system
echo "hello from elsewhere" > banner.txt; rm db-password; echo extra > added`
	var errb bytes.Buffer
	if code, err := e.p.Exec(ctx, id, []string{"sh", "-c", tamper}, kiln.ExecIO{Stderr: &errb}); err != nil || code != 0 {
		t.Fatalf("tamper: exit %d, %v: %s", code, err, errb.String())
	}
	d, err := e.p.CredentialDrift(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := []kiln.DriftEntry{
		{Kind: kiln.DriftAdded, Path: SystemCredentials + "/added"},
		{Kind: kiln.DriftChanged, Path: SystemCredentials + "/banner.txt"},
		{Kind: kiln.DriftDeleted, Path: SystemCredentials + "/db-password"},
	}
	if !slices.Equal(d, want) {
		t.Errorf("credential drift = %+v; want %+v", d, want)
	}
}

// withUnit stores the test image with a unit added and enabled.
func withUnit(t *testing.T, e *env, name, unit string) *kiln.Artifact {
	t.Helper()
	extra := t.TempDir()
	unitDir := filepath.Join(extra, "etc/systemd/system")
	if err := os.MkdirAll(filepath.Join(unitDir, "multi-user.target.wants"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unitDir, name), []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/"+name, filepath.Join(unitDir, "multi-user.target.wants", name)); err != nil {
		t.Fatal(err)
	}
	tarCopy := filepath.Join(extra, "image.tar")
	in, err := os.ReadFile(testImage(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarCopy, in, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "--append", "--file="+tarCopy, "--numeric-owner", "--owner=0", "--group=0", "-C", extra,
		"./etc/systemd/system/"+name, "./etc/systemd/system/multi-user.target.wants/"+name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar --append: %v: %s", err, out)
	}
	f, err := os.Open(tarCopy)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	art, err := e.store.Put(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return art
}

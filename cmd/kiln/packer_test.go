package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/fixtures"
)

// A Packer team's adoption, end to end through a kiln server: the real
// manifests are imported (one request each, all or nothing), the AMI's
// version is given its package manifest (dpkg-query output), an advisory
// affecting one of its packages is imported, a server made from the AMI
// checks in by its artifact id (it has no /etc/kiln-release), and the
// fleet report and exposure show it.
func TestPackerAdoptionEndToEnd(t *testing.T) {
	url, toks, _ := remoteServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KILN_SERVER", "")
	t.Setenv("KILN_ARTIFACT", "")
	t.Setenv("KILN_INSTANCE_ID", "")
	t.Setenv("KILN_ENV", "")
	t.Setenv("KILN_TOKEN", toks[kiln.RoleAdmin])
	dir := t.TempDir()
	remote := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, dir, append([]string{"--server", url}, args...)...)
	}
	mustRemote := func(args ...string) string {
		t.Helper()
		out, errs, code := remote(args...)
		if code != 0 {
			t.Fatalf("kiln %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out
	}
	fx := fixtures.Path(t, "packer-manifest")
	ami := filepath.Join(fx, "devopsmakers-centos7-hardened__packer-manifest.json")
	qemu := filepath.Join(fx, "albarki-packer-circleci-qemu-debian__debian-10.x__packer-manifest.json")
	files := t.TempDir()
	pk := filepath.Join(files, "packages.tsv")
	osv := filepath.Join(files, "DSA-9001-1.json")
	for name, body := range map[string]string{
		// dpkg-query -W -f='${Package}\t${Version}\t${Architecture}\t${source:Package}\t${source:Version}\n'
		pk: "bash\t5.2.15-2+b2\tamd64\tbash\t5.2.15-2\nlibssl3\t3.0.11-1~deb12u2\tamd64\topenssl\t3.0.11-1~deb12u2\n" +
			"openssl\t3.0.11-1~deb12u2\tamd64\topenssl\t3.0.11-1~deb12u2\nzlib1g\t1:1.2.13.dfsg-1\tamd64\tzlib\t1:1.2.13.dfsg-1\n",
		osv: `{"id": "DSA-9001-1", "summary": "openssl - security update", "modified": "2099-01-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u3"}]}]}]}`,
	} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	mustRemote("image", "create", "centos7")
	mustRemote("image", "create", "debian")
	// Eleven builds in one request; packages for a build whose artifact
	// id is not unique are refused before anything is sent.
	if _, errs, code := remote("version", "import", "packer-manifest", qemu, "--image", "debian", "--packages", "VM="+pk); code == 0 || !strings.Contains(errs, "11 builds of the manifest have artifact id \"VM\"") {
		t.Fatalf("--packages for an ambiguous artifact id: exit %d, %s", code, errs)
	}
	if out := mustRemote("version", "import", "packer-manifest", qemu, "--image", "debian"); !strings.Contains(out, "debian-11") {
		t.Fatalf("qemu import:\n%s", out)
	}
	if out := mustRemote("version", "import", "packer-manifest", ami, "--image", "centos7"); !strings.Contains(out, "centos7-1") || !strings.Contains(out, "packer:amazon-ebs:eu-west-1:ami-fa43559c") {
		t.Fatalf("AMI import:\n%s", out)
	}

	// Packages once; never for a second time.
	if out := mustRemote("version", "packages", "set", "centos7-1", pk); !strings.Contains(out, "centos7-1: 4 packages recorded") {
		t.Fatalf("packages set:\n%s", out)
	}
	if _, errs, code := remote("version", "packages", "set", "centos7-1", pk); code == 0 || !strings.Contains(errs, "has a package manifest already") {
		t.Fatalf("second packages set: exit %d, %s", code, errs)
	}
	if out := mustRemote("version", "history", "centos7-1"); !strings.Contains(out, "4 packages") {
		t.Errorf("history does not show the manifest:\n%s", out)
	}
	mustRemote("advisory", "import", "osv", osv)

	// The server has no release file: it names its AMI.
	t.Setenv("KILN_TOKEN", toks[kiln.RoleAgent])
	agent := func(id, artifact string) (string, string, int) {
		return run(t, dir, "agent", "checkin", "--server", url, "--artifact", artifact, "--id", id, "--hostname", id, "--env", "prod")
	}
	if out, errs, code := agent("i-0aaa0000000000001", "eu-west-1:ami-fa43559c"); code != 0 || !strings.Contains(out, "running centos7-1") {
		t.Fatalf("check-in by artifact: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, code := agent("i-0aaa0000000000002", "VM"); code == 0 || !strings.Contains(errs, "artifact VM is the artifact of 11 versions") {
		t.Errorf("check-in by an ambiguous artifact: exit %d, %s", code, errs)
	}
	if _, errs, code := agent("i-0aaa0000000000003", "eu-west-1:ami-00000000"); code == 0 || !strings.Contains(errs, "no imported version has artifact eu-west-1:ami-00000000") {
		t.Errorf("check-in by an unknown artifact: exit %d, %s", code, errs)
	}

	t.Setenv("KILN_TOKEN", toks[kiln.RoleViewer])
	out := mustRemote("fleet", "report", "--drill", "centos7-1")
	if !strings.Contains(out, "i-0aaa0000000000001") || !strings.Contains(out, "prod") {
		t.Errorf("fleet report does not show the instance on centos7-1:\n%s", out)
	}
	out = mustRemote("fleet", "exposed", "--advisory", "DSA-9001-1")
	row := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "centos7 ") {
			row = strings.Join(strings.Fields(l), " ")
		}
	}
	if !strings.HasPrefix(row, "centos7 1 centos7-1 candidate 1 ") || !strings.Contains(row, "libssl3 3.0.11-1~deb12u2") {
		t.Errorf("fleet exposed does not show centos7-1's instance and libssl3:\n%s", out)
	}
	if strings.Contains(out, "debian-") {
		t.Errorf("versions without a manifest are listed as exposed:\n%s", out)
	}
}

package verify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/kiln-project/kiln/internal/ci"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestProbeHost probes things created on this host for the test, plus the
// host's real root account, dpkg database, processes and sysctls.
func TestProbeHost(t *testing.T) {
	dir := t.TempDir()
	motd := filepath.Join(dir, "motd")
	content := "hello\nworld\n"
	if err := os.WriteFile(motd, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(motd, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(motd, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(content))

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "/", http.StatusFound)
		case "/echo":
			w.Header().Set("X-Kiln", "yes")
			fmt.Fprintf(w, "host=%s\nmethod=%s\n", r.Host, r.Method)
		default:
			fmt.Fprint(w, "ok body\nline2\n")
		}
	}))
	defer srv.Close()

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	tcpPort := tcp.Addr().(*net.TCPAddr).Port
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port

	dpkgVersion, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "dpkg").Output()
	if err != nil {
		skipOrFail(t, "this test needs a Debian host with dpkg-query: %v", err)
	}
	comm, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}

	yaml := fmt.Sprintf(`
file:
  %[1]s/motd:
    exists: true
    mode: "0644"
    owner: root
    uid: 0
    filetype: file
    size: 12
    contents: [hello, "!goodbye", "/^wor.d$/"]
    sha256: %[2]s
  %[1]s/link:
    exists: true
    filetype: symlink
    linked-to: %[1]s/motd
  %[1]s/fifo: {exists: true, filetype: pipe}
  %[1]s/missing: {exists: false}
  %[1]s/missing-mode: {path: %[1]s/missing2, exists: true, mode: "0644"}
command:
  output:
    exec: "echo hi; echo oops >&2; exit 3"
    exit-status: 3
    stdout: hi
    stderr: [oops]
  slow:
    exec: sleep 5
    exit-status: 0
    timeout: 200
http:
  %[3]s/:
    status: 200
    body: [ok body, "!error"]
  redirect:
    url: %[3]s/redirect
    no-follow-redirects: true
    status: 302
  echo:
    url: %[3]s/echo
    method: PUT
    request-headers: ["Host: kiln.example"]
    status: 200
    body: [host=kiln.example, method=PUT]
    headers: ["X-Kiln: yes"]
port:
  tcp:%[4]d: {listening: true, ip: [127.0.0.1]}
  udp:%[5]d: {listening: true}
  tcp6:%[4]d: {listening: false}
user:
  root: {exists: true, uid: 0, gid: 0, home: /root, groups: [root]}
  kiln-no-such-user: {exists: false}
group:
  root: {exists: true, gid: 0}
  kiln-no-such-group: {exists: false}
package:
  dpkg: {installed: true, versions: [%[6]s]}
  kiln-no-such-package: {installed: false}
process:
  %[7]s: {running: true}
  kiln-no-such-process: {running: false}
kernel-param:
  kernel.ostype: {value: Linux}
  kernel.pid_max: {value: {gt: 1}}
service:
  skipped: {running: true, skip: true}
`, dir, hex.EncodeToString(sum[:]), srv.URL, tcpPort, udpPort, dpkgVersion, strings.TrimSpace(string(comm)))
	suite, err := Parse(filepath.Join(dir, "goss.yaml"), []byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	rep := Probe(context.Background(), suite)

	type want struct {
		outcome  Outcome
		found    string // checked when not empty
		errorHas string // checked when not empty
	}
	wants := map[string]want{
		"file motd mode":                         {Fail, "0640", ""},
		"file motd owner":                        {Pass, "root", ""},
		"file motd size":                         {Pass, "12", ""},
		"file motd contents":                     {Pass, "", ""},
		"file motd sha256":                       {Pass, "", ""},
		"file link filetype":                     {Pass, "symlink", ""},
		"file link linked-to":                    {Pass, "", ""},
		"file fifo filetype":                     {Pass, "pipe", ""},
		"file missing exists":                    {Pass, "false", ""},
		"file missing-mode exists":               {Fail, "false", ""},
		"file missing-mode mode":                 {Fail, "", "does not exist"},
		"command output exit-status":             {Pass, "3", ""},
		"command output stdout":                  {Pass, "hi", ""},
		"command output stderr":                  {Pass, "", ""},
		"command slow exit-status":               {Fail, "", "timed out"},
		"http redirect status":                   {Pass, "302", ""},
		"http echo body":                         {Pass, "", ""},
		"http echo headers":                      {Pass, "", ""},
		"user root groups":                       {Pass, "[root]", ""},
		"user root home":                         {Pass, "/root", ""},
		"user kiln-no-such-user exists":          {Pass, "false", ""},
		"package dpkg versions":                  {Pass, "[" + string(dpkgVersion) + "]", ""},
		"package kiln-no-such-package installed": {Pass, "false", ""},
		"kernel-param kernel.ostype value":       {Pass, "Linux", ""},
		"service skipped running":                {Skip, "", ""},
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		key := fmt.Sprintf("%s %s %s", r.Type, strings.TrimPrefix(r.ID, dir+"/"), r.Property)
		seen[key] = true
		w, ok := wants[key]
		if !ok {
			// Every other check on this host passes.
			w = want{outcome: Pass}
		}
		if r.Outcome != w.outcome {
			t.Errorf("%s: outcome %s, want %s (expected %q, found %q, error %q)", key, r.Outcome, w.outcome, r.Expected, r.Found, r.Error)
		}
		if w.found != "" && r.Found != w.found {
			t.Errorf("%s: found %q, want %q", key, r.Found, w.found)
		}
		if w.errorHas != "" && !strings.Contains(r.Error, w.errorHas) {
			t.Errorf("%s: error %q, want it to contain %q", key, r.Error, w.errorHas)
		}
	}
	for k := range wants {
		if !seen[k] {
			t.Errorf("no result for %s", k)
		}
	}
	if rep.Summary.Count != suite.Count() || rep.Summary.Skipped != 1 || rep.Summary.Failed != 4 {
		t.Errorf("summary = %+v, want count %d, 4 failed, 1 skipped", rep.Summary, suite.Count())
	}
	if rep.Passed() {
		t.Error("Passed() = true with failures")
	}
}

// TestProbeService asks this host's systemctl about a unit that does not
// exist: is-enabled works without a running systemd.
func TestProbeService(t *testing.T) {
	if _, err := exec.LookPath("systemctl"); err != nil {
		skipOrFail(t, "systemctl not installed: %v", err)
	}
	suite, err := Parse("t.yaml", []byte("service:\n  kiln-no-such-unit: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	rep := Probe(context.Background(), suite)
	if r := rep.Results[0]; r.Outcome != Pass {
		t.Errorf("enabled: %+v", r)
	}
}

func TestProbeCancelled(t *testing.T) {
	suite, err := Parse("t.yaml", []byte("command:\n  'true': {exit-status: 0}\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rep := Probe(ctx, suite)
	if r := rep.Results[0]; r.Outcome != Fail || !strings.Contains(r.Error, "canceled") {
		t.Errorf("result = %+v, want a failure naming the cancellation", r)
	}
}

// skipOrFail skips when a host tool is missing, but fails under CI=true.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	ci.SkipOrFail(t, fmt.Sprintf(format, args...))
}

package vm

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestEgressArgs(t *testing.T) {
	netdev, fwcfg, err := egressArgs([]string{"127.0.0.1:8080", "127.0.0.2:9443"}, []string{"/usr/local/bin/kiln", "__vm-supervise"})
	if err != nil {
		t.Fatal(err)
	}
	want := ",guestfwd=tcp:10.0.2.100:8080-cmd:/usr/local/bin/kiln __vm-supervise --egress-relay 127.0.0.1:8080" +
		",guestfwd=tcp:10.0.2.100:9443-cmd:/usr/local/bin/kiln __vm-supervise --egress-relay 127.0.0.2:9443"
	if netdev != want {
		t.Errorf("netdev = %q\nwant     %q", netdev, want)
	}
	if strings.Join(fwcfg, " ") != "-fw_cfg name=opt/org.kiln/egress,string=127.0.0.1:8080;127.0.0.2:9443" {
		t.Errorf("fw_cfg = %q", fwcfg)
	}
	if n, f, err := egressArgs(nil, []string{"/k"}); n != "" || f != nil || err != nil {
		t.Errorf("no egress: %q %q %v", n, f, err)
	}
	if _, _, err := egressArgs([]string{"127.0.0.1:1"}, []string{"/opt/my kiln/kiln", "__vm-supervise"}); kiln.ErrorCode(err) != kiln.EUNAVAILABLE {
		t.Errorf("a path with a space: %v; want unavailable", err)
	}
	for _, bad := range []string{"10.0.0.1:80", "[::1]:80", "127.0.0.1", "127.0.0.1:0", "localhost:80"} {
		if err := validateEgress(0, bad); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "config.egress[0]") {
			t.Errorf("egress %q: %v; want invalid naming config.egress[0]", bad, err)
		}
	}
}

// The relay QEMU starts per guest connection carries a request to the
// declared host address and the answer back, and refuses an address that
// is not loopback.
func TestEgressRelay(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "saw %s", r.URL.Path)
	}))
	defer srv.Close()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "__vm-supervise", egressRelayFlag, strings.TrimPrefix(srv.URL, "http://"))
	cmd.Stdin = strings.NewReader("GET /api/v1/checkins HTTP/1.0\r\n\r\n")
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "HTTP/1.0 200") || !strings.HasSuffix(string(out), "saw /api/v1/checkins") {
		t.Fatalf("relay: %v, %q", err, out)
	}
	cmd = exec.Command(exe, "__vm-supervise", egressRelayFlag, "10.0.2.2:80")
	if out, err := cmd.CombinedOutput(); err == nil || len(out) > 0 {
		t.Errorf("relay to a non-loopback address: %v, %q; want a silent failure", err, out)
	}
}

package local

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
)

// TestEgress launches an instance whose configuration declares egress to a
// server on the host's loopback: from inside, the same address reaches
// it (also after a kiln restart), an undeclared host port does not, and
// destroy leaves nothing behind.
func TestEgress(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()

	var mu sync.Mutex
	var seen []string
	holding, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/hold" {
			close(holding)
			<-release
			return
		}
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		fmt.Fprintf(w, "hello %s\n", r.URL.Path)
	}))
	defer srv.Close()
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("undeclared host port reached from the instance: %s", r.URL.Path)
	}))
	defer other.Close()
	addr := srv.Listener.Addr().String()

	cfg := &kiln.LaunchConfig{Digest: "sha256:egress", Source: "test", Egress: []string{addr},
		Credentials: []kiln.Credential{{Name: "kiln-agent", Data: []byte("KILN_SERVER=\"http://" + addr + "\"\n"), Secret: true}}}
	id := "egress-1"
	t.Cleanup(func() { _ = e.p.Destroy(context.Background(), id) })
	res, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "egress", Artifact: e.art, Timeout: time.Minute, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if res.State != kiln.InstanceRunning {
		t.Fatalf("launch = %+v; want running", res)
	}
	// bash's /dev/tcp: the test image's busybox wget is not dependable.
	get := func(p *Platform, hostPort, path string) (string, int, error) {
		host, port, _ := net.SplitHostPort(hostPort)
		script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/%s && printf 'GET %s HTTP/1.0\r\n\r\n' >&3 && cat <&3`, host, port, path)
		var out, errb bytes.Buffer
		code, err := p.Exec(ctx, id, []string{"timeout", "20", "bash", "-c", script}, kiln.ExecIO{Stdout: &out, Stderr: &errb})
		body := out.String()
		if i := strings.Index(body, "\r\n\r\n"); i >= 0 {
			body = body[i+4:]
		}
		return body + errb.String(), code, err
	}
	if out, code, err := get(e.p, addr, "/checkin"); err != nil || code != 0 || out != "hello /checkin\n" {
		t.Fatalf("GET %s from the instance = %q, exit %d, %v; want the host server's answer", addr, out, code, err)
	}
	if out, code, err := get(e.p, other.Listener.Addr().String(), "/"); err != nil || code == 0 {
		t.Errorf("undeclared host port: %q, exit %d, %v; want a refused connection", out, code, err)
	}
	rec, err := readRecord(e.p.instanceDir(id))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Egress, []string{addr}) {
		t.Errorf("record egress = %v; want [%s]", rec.Egress, addr)
	}

	// A restarted kiln finds the instance, egress and all: the supervisor
	// that holds the listener outlives kiln.
	restarted, err := New(Config{DataDir: e.dir, Artifacts: e.store, ProbeBinary: e.p.probe, Supervisor: e.p.supervisor})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := restarted.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if out, code, err := get(restarted, addr, "/again"); err != nil || code != 0 || out != "hello /again\n" {
		t.Fatalf("GET after a kiln restart = %q, exit %d, %v", out, code, err)
	}
	mu.Lock()
	if !slices.Equal(seen, []string{"/checkin", "/again"}) {
		t.Errorf("host server saw %v", seen)
	}
	mu.Unlock()

	// A connection the host server keeps open while the instance is
	// destroyed does not hold up the supervisor; nothing is left.
	holdDone := make(chan struct{})
	go func() {
		defer close(holdDone)
		_, _, _ = get(e.p, addr, "/hold") // ends when the instance goes
	}()
	<-holding
	if err := e.p.Destroy(ctx, id); err != nil {
		t.Fatal(err)
	}
	<-holdDone
	close(release)
	if l := e.leftovers(t); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	// The host's address is free for the host: no listener of kiln's was
	// ever on it (the one inside the instance is gone with its namespace).
	if c, err := net.DialTimeout("tcp", addr, time.Second); err != nil {
		t.Errorf("host server unreachable after destroy: %v", err)
	} else {
		c.Close()
	}
}

// TestEgressRefused: only loopback addresses with a port are accepted, and
// the refusal comes before anything is made.
func TestEgressRefused(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "0.0.0.0:8080", "127.0.0.1", "127.0.0.1:0", "localhost:8080", "[::1]:99999"} {
		err := validateEgress(0, addr)
		if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "egress") {
			t.Errorf("%s: %v; want EINVALID naming the egress", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:8088", "[::1]:8088", "127.0.0.5:1"} {
		if err := validateEgress(0, addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	dir := t.TempDir()
	store, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{DataDir: dir, Artifacts: store, Supervisor: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Launch(context.Background(), kiln.LaunchSpec{ID: "x", Name: "x",
		Artifact: kiln.Artifact{Digest: "sha256:" + strings.Repeat("0", 64)},
		Config:   &kiln.LaunchConfig{Egress: []string{"192.168.1.1:80"}}})
	if kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("launch with a non-loopback egress: %v; want EINVALID", err)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln/cli"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiln test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// A server run over TLS with tokens made by the CLI: the roles hold, and
// no secret appears in any log or message of the whole run.
func TestServeTLSAndNoSecretsInLogs(t *testing.T) {
	dir := t.TempDir()
	var stderrs []string
	create := func(name, role string) string {
		out, errs, code := run(t, dir, "-v", "token", "create", name, "--role", role)
		if code != 0 {
			t.Fatalf("token create %s: %s", name, errs)
		}
		stderrs = append(stderrs, errs)
		return strings.TrimSpace(out)
	}
	admin, viewer, gone := create("admin", "admin"), create("viewer", "viewer"), create("gone", "builder")
	if _, errs, code := run(t, dir, "-v", "token", "revoke", "gone"); code != 0 {
		t.Fatal(errs)
	} else {
		stderrs = append(stderrs, errs)
	}

	if _, errs, code := run(t, dir, "serve", "--listen", "0.0.0.0:0"); code != 1 || !strings.Contains(errs, "--tls-cert") {
		t.Fatalf("serve on all addresses without TLS: exit %d: %s", code, errs)
	}

	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cli.Config{DataDir: dir}, logger, cli.ServeOptions{Listen: "127.0.0.1:0", TLSCert: certFile, TLSKey: keyFile})
	}()
	addrRE := regexp.MustCompile(`listening"? addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		cancel()
		t.Fatalf("server did not start: %s %v", logs.String(), <-done)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var bodies []string
	req := func(token, method, path, body string) int {
		t.Helper()
		r, _ := http.NewRequest(method, "https://"+addr+path, strings.NewReader(body))
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		bodies = append(bodies, string(b))
		return resp.StatusCode
	}
	for _, c := range []struct {
		token, method, path, body string
		want                      int
	}{
		{"", "GET", "/healthz", "", 200},
		{"", "GET", "/api/v1/images", "", 401},
		{viewer, "GET", "/api/v1/images", "", 200},
		{viewer, "POST", "/api/v1/images", `{"name":"web"}`, 403},
		{gone, "POST", "/api/v1/images", `{"name":"web"}`, 401},
		{admin + "x", "GET", "/api/v1/images", "", 401},
		{strings.ToUpper(admin), "GET", "/api/v1/images", "", 401},
		{admin, "POST", "/api/v1/images", `{"name":"web"}`, 201},
	} {
		if got := req(c.token, c.method, c.path, c.body); got != c.want {
			t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, got, c.want, bodies[len(bodies)-1])
		}
	}
	// Plain HTTP is not answered on the TLS port.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
		if resp.StatusCode == 200 {
			t.Errorf("plain HTTP answered 200")
		}
		resp.Body.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}

	auditOut, _, _ := run(t, dir, "-o", "json", "audit")
	everything := logs.String() + strings.Join(stderrs, "") + strings.Join(bodies, "") + auditOut
	if !strings.Contains(everything, "api.denied") || !strings.Contains(logs.String(), "listening") {
		t.Fatalf("the test saw too little to be meaningful:\n%s", everything)
	}
	db, _ := os.ReadFile(filepath.Join(dir, "kiln.db"))
	wal, _ := os.ReadFile(filepath.Join(dir, "kiln.db-wal"))
	for name, secret := range map[string]string{"admin": admin, "viewer": viewer, "gone": gone} {
		body := strings.TrimPrefix(secret, "kiln_")
		if len(body) < 40 {
			t.Fatalf("token %s: secret %q too short", name, secret)
		}
		if strings.Contains(strings.ToLower(everything), body) {
			t.Errorf("the secret of token %s appears in logs, messages or the audit log", name)
		}
		if bytes.Contains(db, []byte(body)) || bytes.Contains(wal, []byte(body)) {
			t.Errorf("the secret of token %s is stored in the database", name)
		}
	}
}

// startServe runs serve on 127.0.0.1 and returns its address; the server
// stops when the test ends.
func startServe(t testing.TB, dir string, opts cli.ServeOptions) string {
	t.Helper()
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	opts.Listen = "127.0.0.1:0"
	go func() { done <- serve(ctx, cli.Config{DataDir: dir}, logger, opts) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrRE := regexp.MustCompile(`listening"? addr=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("server did not start: %s", logs.String())
	return ""
}

// Behind a TLS-terminating proxy kiln serves plain HTTP, yet the
// browser talks HTTPS: --secure-cookies marks the session cookie Secure.
func TestServeSecureCookiesBehindProxy(t *testing.T) {
	for _, secure := range []bool{false, true} {
		dir := t.TempDir()
		token := strings.TrimSpace(mustRun(t, dir, "token", "create", "alice", "--role", "viewer"))
		addr := startServe(t, dir, cli.ServeOptions{SecureCookies: secure})
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/ui/signin", strings.NewReader("token="+token))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var cookie *http.Cookie
		for _, ck := range resp.Cookies() {
			if ck.Name == "kiln_session" {
				cookie = ck
			}
		}
		if cookie == nil {
			t.Fatalf("sign-in: %d, no session cookie", resp.StatusCode)
		}
		if cookie.Secure != secure {
			t.Errorf("--secure-cookies=%v: the session cookie's Secure is %v", secure, cookie.Secure)
		}
	}
	// The flag is there under both names.
	for _, flag := range []string{"--secure-cookies", "--behind-tls-proxy"} {
		if _, errs, _ := run(t, t.TempDir(), "serve", flag, "--listen", "nonsense"); strings.Contains(errs, "unknown flag") {
			t.Errorf("%s: %s", flag, errs)
		}
	}
}

// Through --server the CLI does not send its token over plain HTTP to a
// host other than loopback unless told to.
func TestRemoteRefusesCleartextToken(t *testing.T) {
	t.Setenv("KILN_TOKEN", "kiln_"+strings.Repeat("a", 52))
	t.Setenv("KILN_ALLOW_HTTP", "")
	_, errs, code := run(t, t.TempDir(), "--server", "http://192.0.2.10:8080", "image", "list")
	if code == 0 || !strings.Contains(errs, "clear text") || !strings.Contains(errs, "--allow-http") {
		t.Fatalf("plain HTTP to a remote server: exit %d: %s", code, errs)
	}
}

// kiln serve --estate with an estate that does not load stops the start,
// naming the flag, instead of failing the first rollout.
func TestServeRefusesBrokenEstate(t *testing.T) {
	dir := t.TempDir()
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "x.kiln.hcl"), []byte("image \"a\" {\n  nosuch = 1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.DiscardHandler)
	err := serve(context.Background(), cli.Config{DataDir: dir}, logger, cli.ServeOptions{Listen: "127.0.0.1:0", Estate: bad})
	if err == nil || !strings.Contains(err.Error(), "--estate "+bad) || !strings.Contains(err.Error(), "x.kiln.hcl") {
		t.Fatalf("serve --estate %s: %v; want a refusal naming --estate and the file", bad, err)
	}
}

// kiln serve's loop intervals are hidden flags: absent from its help,
// accepted, and refused when not positive, naming the flag.
func TestServeLoopIntervals(t *testing.T) {
	out, _, code := run(t, t.TempDir(), "serve", "--help")
	if code != 0 || !strings.Contains(out, "--follow-every") {
		t.Fatalf("kiln serve --help: exit %d\n%s", code, out)
	}
	for _, flag := range []string{"--trigger-every", "--sources-every", "--autopilot-every"} {
		if strings.Contains(out, flag) {
			t.Errorf("%s is in kiln serve's help; it is hidden", flag)
		}
		_, errs, code := run(t, t.TempDir(), "serve", flag, "0s")
		if code == 0 || !strings.Contains(errs, flag) || !strings.Contains(errs, "not a positive interval") {
			t.Errorf("kiln serve %s 0s: exit %d: %s", flag, code, errs)
		}
		if _, errs, _ := run(t, t.TempDir(), "serve", flag, "2s", "--listen", "nonsense"); strings.Contains(errs, "unknown flag") || strings.Contains(errs, flag) {
			t.Errorf("kiln serve %s 2s: %s", flag, errs)
		}
	}
}

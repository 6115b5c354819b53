// Package registrytest starts Debian's docker-registry (distribution 2.8)
// for tests: on a free port, with a temporary storage directory, and
// optionally with htpasswd basic auth and TLS from a CA made for the test.
// Tests that use it skip locally when the binary is absent and fail under
// CI=true (internal/ci). Only tests import it.
package registrytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kiln-project/kiln/internal/ci"
)

// Options choose what kind of registry to start.
type Options struct {
	// TLS serves HTTPS with a certificate signed by a CA made for the
	// test (Registry.CAFile).
	TLS bool
	// Auth requires basic auth (htpasswd): Registry.User and Password.
	Auth bool
	// Token requires bearer tokens (the registry token flow): a token
	// server on loopback, started for the test, issues JWTs signed by a
	// key whose certificate is the registry's rootcertbundle to the
	// account User/Password (as Auth does).
	Token bool
	// NoDelete leaves deletes disabled, as docker-registry's own default
	// configuration does (storage.delete.enabled: false): DELETE answers
	// 405 Method Not Allowed.
	NoDelete bool
	// Listen is the address to listen on; empty is 127.0.0.1. The
	// registry is reached at Host, which uses this address unless it is
	// unspecified (0.0.0.0), then 127.0.0.1.
	Listen string
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is HOST:PORT to reach it.
	Host string
	// Port is the port it listens on.
	Port int
	// Dir is its storage directory.
	Dir string
	// CAFile is the PEM file of the CA that signed its certificate (TLS).
	CAFile string
	// User and Password are the account it accepts (Auth, Token).
	User, Password string
	// TokenURL is the token server's realm (Token); Tokens counts the
	// tokens it issued.
	TokenURL string
	Tokens   *atomic.Int64
	// Log is the file its output goes to.
	Log string
}

// Start starts a registry and stops it when tb ends. It skips (or fails
// under CI=true) when docker-registry is not installed.
func Start(tb testing.TB, opts Options) *Registry {
	tb.Helper()
	bin := ci.Tool(tb, "docker-registry", "docker-registry")
	dir := tb.TempDir()
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1"
	}
	port := freePort(tb, listen)
	host := listen
	if ip := net.ParseIP(listen); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	r := &Registry{
		Host: net.JoinHostPort(host, fmt.Sprint(port)),
		Port: port,
		Dir:  filepath.Join(dir, "storage"),
		Log:  filepath.Join(dir, "registry.log"),
	}
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: %t
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
`, r.Dir, !opts.NoDelete, net.JoinHostPort(listen, fmt.Sprint(port)))
	if opts.TLS {
		cert, key, ca := makeTLS(tb, dir, host)
		r.CAFile = ca
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if opts.Auth {
		r.User, r.Password = "kiln", "s3cret-"+fmt.Sprint(time.Now().UnixNano()%100000)
		h, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		pw := filepath.Join(dir, "htpasswd")
		writeFile(tb, pw, r.User+":"+string(h)+"\n")
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: kiln-test\n    path: %s\n", pw)
	}
	if opts.Token {
		r.User, r.Password = "kiln", "t0ken-"+fmt.Sprint(time.Now().UnixNano()%100000)
		cfg += startTokenServer(tb, r, dir)
	}
	cfgFile := filepath.Join(dir, "config.yml")
	writeFile(tb, cfgFile, cfg)
	logf, err := os.Create(r.Log)
	if err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgFile)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none")
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start docker-registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		werr := <-exited // "killed", unless it had stopped already
		logf.Close()
		if tb.Failed() {
			tb.Logf("docker-registry (%v) log (%s):\n%s", werr, r.Log, tail(r.Log, 40))
		}
	})
	scheme := "http"
	if opts.TLS {
		scheme = "https"
	}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // readiness probe only
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := c.Get(scheme + "://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			return r
		}
		select {
		case err := <-exited:
			tb.Fatalf("docker-registry exited before serving (%v):\n%s", err, tail(r.Log, 40))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("docker-registry did not answer on %s within 15s:\n%s", r.Host, tail(r.Log, 40))
		}
	}
}

// URL returns oci://HOST:PORT/repo.
func (r *Registry) URL(repo string) string { return "oci://" + r.Host + "/" + repo }

// CredentialsFile writes a Docker-format config.json giving user and
// password for this registry and returns its path.
func (r *Registry) CredentialsFile(tb testing.TB, user, password string) string {
	tb.Helper()
	return CredentialsFile(tb, r.Host, user, password)
}

// CredentialsFile writes a Docker-format config.json giving user and
// password for host and returns its path.
func CredentialsFile(tb testing.TB, host, user, password string) string {
	tb.Helper()
	b, err := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}})
	if err != nil {
		tb.Fatal(err)
	}
	p := filepath.Join(tb.TempDir(), "config.json")
	writeFile(tb, p, string(b))
	return p
}

func freePort(tb testing.TB, host string) int {
	tb.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		tb.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// makeTLS makes a CA and a server certificate for host, 127.0.0.1, ::1
// and localhost, and returns the files of the certificate, its key and
// the CA.
func makeTLS(tb testing.TB, dir, host string) (cert, key, ca string) {
	tb.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kiln test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		tb.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(host); ip != nil && !ip.IsLoopback() {
		ips = append(ips, ip)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  ips,
		DNSNames:     []string{"localhost"},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, key, ca = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	writeFile(tb, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER})))
	writeFile(tb, key, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	writeFile(tb, ca, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	return cert, key, ca
}

func writeFile(tb testing.TB, p, s string) {
	tb.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		tb.Fatal(err)
	}
}

func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

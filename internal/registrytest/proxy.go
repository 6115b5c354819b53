package registrytest

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// ReadOnly is a loopback reverse proxy in front of a Registry that plays
// an account with pull rights only, as Harbor, GHCR, ECR or a token
// server's ACL do: reads (GET, HEAD) go through with their credentials;
// writes (POST, PUT, PATCH, DELETE) are answered 403 Forbidden with the
// distribution spec's DENIED error. docker-registry's htpasswd auth has
// no per-user rights; this is the fault injector for them.
type ReadOnly struct {
	// Host is HOST:PORT to reach the proxy (plain HTTP, loopback).
	Host string
	// Denied counts the requests it refused.
	Denied *atomic.Int64
}

// URL returns oci://HOST:PORT/repo through the proxy.
func (p *ReadOnly) URL(repo string) string { return "oci://" + p.Host + "/" + repo }

// ReadOnlyProxy starts a ReadOnly proxy to r and stops it when tb ends.
func ReadOnlyProxy(tb testing.TB, r *Registry) *ReadOnly {
	tb.Helper()
	target := &url.URL{Scheme: "http", Host: r.Host}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if r.CAFile != "" {
		target.Scheme = "https"
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			tb.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = tr
	p := &ReadOnly{Denied: &atomic.Int64{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			rp.ServeHTTP(w, req)
			return
		}
		p.Denied.Add(1)
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}` + "\n"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	p.Host = ln.Addr().String()
	return p
}

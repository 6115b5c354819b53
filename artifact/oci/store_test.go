package oci

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/registrytest"
)

// blobFile is where docker-registry keeps a blob's content.
func blobFile(reg *registrytest.Registry, d string) string {
	hexd := strings.TrimPrefix(d, "sha256:")
	return filepath.Join(reg.Dir, "docker/registry/v2/blobs/sha256", hexd[:2], hexd, "data")
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	_, s := plainStore(t)
	content := bytes.Repeat([]byte("kiln artifact "), 100_000)
	a, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(content)) || !strings.HasPrefix(a.Ref, s.Location().String()+"@sha256:") {
		t.Errorf("Put = %+v", a)
	}
	again, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil || again.Digest != a.Digest {
		t.Fatalf("second Put = %+v, %v; want the same digest, no error", again, err)
	}
	st, err := s.Stat(ctx, a.Digest)
	if err != nil || st.Size != a.Size {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	rc, err := s.Open(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) {
		t.Error("Open returned other content")
	}
	if err := s.Delete(ctx, a.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, a.Digest); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("Stat after Delete = %v, want not_found", err)
	}
	if _, err := s.Open(ctx, a.Digest); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("Open after Delete = %v, want not_found", err)
	}
	if err := s.Delete(ctx, a.Digest); err != nil {
		t.Errorf("deleting a missing artifact: %v", err)
	}
	if _, err := s.Open(ctx, "sha256:nothex"); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("Open of a bad digest = %v, want invalid", err)
	}
}

// A blob corrupted on the registry's disk is refused while it is read.
func TestStoreOpenCorrupted(t *testing.T) {
	ctx := context.Background()
	reg, s := plainStore(t)
	content := bytes.Repeat([]byte("x"), 4096)
	a, err := s.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Repeat([]byte("y"), 4096)
	if err := os.WriteFile(blobFile(reg, a.Digest), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Open(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := io.ReadAll(rc)
	cerr := rc.Close()
	for _, err := range []error{rerr, cerr} {
		if err == nil || !strings.Contains(err.Error(), "is corrupted") || !strings.Contains(err.Error(), a.Digest) || !strings.Contains(err.Error(), s.Location().String()) {
			t.Errorf("reading a corrupted blob: %v; want a corruption error naming the digest and the URL", err)
		}
	}
	// Closing early without reading is not told about what it did not read,
	// but a nearly read artifact is checked at Close.
	rc, err = s.Open(ctx, a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(rc, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := rc.Close(); err == nil || !strings.Contains(err.Error(), "is corrupted") {
		t.Errorf("Close after a partial read of a small corrupted blob = %v, want corruption", err)
	}
}

func TestAuth(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{TLS: true, Auth: true})
	open := func(t *testing.T, opts Options) *Store {
		t.Helper()
		opts.CAFile = reg.CAFile
		s, err := Open(reg.URL("kiln"), opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	t.Run("anonymous", func(t *testing.T) {
		s := open(t, Options{CredentialsFile: emptyCredentials(t)})
		_, err := s.Put(ctx, strings.NewReader("hello"))
		if kiln.ErrorCode(err) != kiln.EUNAUTH || !strings.Contains(err.Error(), "docker login "+reg.Host) || !strings.Contains(err.Error(), reg.URL("kiln")) {
			t.Errorf("anonymous Put = %v; want unauthorized naming the URL and docker login", err)
		}
	})
	t.Run("basic from a credentials file", func(t *testing.T) {
		s := open(t, Options{CredentialsFile: reg.CredentialsFile(t, reg.User, reg.Password)})
		a, err := s.Put(ctx, strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, a.Digest); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("basic from docker's config", func(t *testing.T) {
		f := reg.CredentialsFile(t, reg.User, reg.Password)
		t.Setenv("DOCKER_CONFIG", filepath.Dir(f))
		s := open(t, Options{})
		if _, err := s.Put(ctx, strings.NewReader("hello docker")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		s := open(t, Options{CredentialsFile: reg.CredentialsFile(t, reg.User, "wrong")})
		_, err := s.Stat(ctx, "sha256:"+strings.Repeat("0", 64))
		if kiln.ErrorCode(err) != kiln.EUNAUTH || !strings.Contains(err.Error(), "refused kiln's credentials") || !strings.Contains(err.Error(), reg.Host) {
			t.Errorf("Stat with a wrong password = %v; want unauthorized saying the credentials were refused", err)
		}
	})
	t.Run("missing credentials file", func(t *testing.T) {
		_, err := Open(reg.URL("kiln"), Options{CredentialsFile: filepath.Join(t.TempDir(), "nope.json")})
		if kiln.ErrorCode(err) != kiln.EINVALID || kiln.ErrorField(err) != "artifacts-credentials" {
			t.Errorf("Open with a missing credentials file = %v", err)
		}
	})
}

func TestTLS(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	creds := emptyCredentials(t)
	s, err := Open(reg.URL("kiln"), Options{CAFile: reg.CAFile, CredentialsFile: creds})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, strings.NewReader("over TLS")); err != nil {
		t.Fatalf("Put with the registry's CA: %v", err)
	}
	if s.scheme() != "https" {
		t.Errorf("scheme = %s, want https", s.scheme())
	}
	// Without the CA the certificate is refused, with a hint.
	s, err = Open(reg.URL("kiln"), Options{CredentialsFile: creds})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, strings.NewReader("over TLS"))
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "--artifacts-ca") || !strings.Contains(err.Error(), reg.URL("kiln")) {
		t.Errorf("Put without the CA = %v; want unavailable with the --artifacts-ca hint", err)
	}
	// Another CA is refused too.
	other := registrytest.Start(t, registrytest.Options{TLS: true})
	s, err = Open(reg.URL("kiln"), Options{CAFile: other.CAFile, CredentialsFile: creds})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, strings.NewReader("over TLS")); kiln.ErrorCode(err) != kiln.EUNAVAILABLE {
		t.Errorf("Put with another CA = %v; want unavailable", err)
	}
	if _, err := Open(reg.URL("kiln"), Options{CAFile: creds}); kiln.ErrorField(err) != "artifacts-ca" {
		t.Errorf("Open with a CA file without certificates = %v", err)
	}
}

// Plain HTTP is used with a loopback registry, and with any other only
// when asked for.
func TestPlainHTTP(t *testing.T) {
	ctx := context.Background()
	_, s := plainStore(t)
	if _, err := s.Put(ctx, strings.NewReader("plain")); err != nil {
		t.Fatal(err)
	}
	if s.scheme() != "http" {
		t.Errorf("loopback scheme = %s, want http", s.scheme())
	}
	ip := nonLoopbackIP(t)
	reg := registrytest.Start(t, registrytest.Options{Listen: ip})
	creds := emptyCredentials(t)
	s, err := Open(reg.URL("kiln"), Options{CredentialsFile: creds})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(ctx, strings.NewReader("plain"))
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "--artifacts-plain-http") || !strings.Contains(err.Error(), reg.Host) {
		t.Errorf("Put over plain HTTP to %s without the flag = %v; want a refusal naming --artifacts-plain-http", reg.Host, err)
	}
	s, err = Open(reg.URL("kiln"), Options{CredentialsFile: creds, PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, strings.NewReader("plain")); err != nil {
		t.Errorf("Put over plain HTTP with the flag: %v", err)
	}
}

func nonLoopbackIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	ci.SkipOrFail(t, "this machine has no non-loopback IPv4 address to test plain HTTP to a remote registry")
	return ""
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s, err := Open("oci://"+addr+"/kiln", Options{CredentialsFile: emptyCredentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Stat(context.Background(), "sha256:"+strings.Repeat("0", 64))
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "oci://"+addr+"/kiln") || !strings.Contains(err.Error(), "cannot be reached") {
		t.Errorf("Stat on a closed port = %v; want unavailable naming the URL", err)
	}
}

// A registry that fails (here: out of storage on upload) is reported with
// the status and what to do. A fake registry: a real full disk is not
// something a test should make.
func TestRegistryFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodPost:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInsufficientStorage)
			io.WriteString(w, `{"errors":[{"code":"UNKNOWN","message":"no space left on device"}]}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	s, err := Open("oci://"+host+"/kiln", Options{CredentialsFile: emptyCredentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Put(context.Background(), strings.NewReader("content"))
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "out of storage") || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "oci://"+host+"/kiln") {
		t.Errorf("Put to a full registry = %v; want unavailable saying it is out of storage", err)
	}
	_, err = s.Open(context.Background(), "sha256:"+strings.Repeat("0", 64))
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "500") {
		t.Errorf("Open from a failing registry = %v; want unavailable with the status", err)
	}
}

// CheckDeletes tells, without deleting anything, a registry that allows
// deletes from one that has them disabled (405) and an account without
// the right (403).
func TestCheckDeletes(t *testing.T) {
	ctx := context.Background()
	open := func(url, creds string) *Store {
		t.Helper()
		s, err := Open(url, Options{CredentialsFile: creds})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	_, s := plainStore(t)
	if err := s.CheckDeletes(ctx, ""); err != nil {
		t.Errorf("a registry that allows deletes: %v", err)
	}
	if err := s.CheckDeletes(ctx, "appserver"); err != nil {
		t.Errorf("an image repository never pushed: %v", err)
	}
	off := registrytest.Start(t, registrytest.Options{NoDelete: true})
	err := open(off.URL("kiln"), emptyCredentials(t)).CheckDeletes(ctx, "appserver")
	if kiln.ErrorCode(err) != kiln.EUNAVAILABLE || !strings.Contains(err.Error(), "storage: delete: enabled: true") || !strings.Contains(err.Error(), off.URL("kiln/appserver")) {
		t.Errorf("deletes disabled: %v", err)
	}
	auth := registrytest.Start(t, registrytest.Options{Auth: true})
	ro := registrytest.ReadOnlyProxy(t, auth)
	err = open(ro.URL("kiln"), registrytest.CredentialsFile(t, ro.Host, auth.User, auth.Password)).CheckDeletes(ctx, "")
	if kiln.ErrorCode(err) != kiln.EFORBIDDEN || !strings.Contains(err.Error(), "delete rights") {
		t.Errorf("an account without delete rights: %v", err)
	}
}

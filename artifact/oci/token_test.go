package oci

import (
	"context"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/registrytest"
)

// The registry token flow: docker-registry with `auth: token`, a token
// server on loopback issuing JWTs signed by the key its rootcertbundle
// names. kiln gets a token with its basic credentials and pushes and
// pulls a version with it; wrong credentials are refused with the flag
// to fix them named, and anonymous access is refused likewise.
func TestTokenAuth(t *testing.T) {
	ctx := context.Background()
	reg := registrytest.Start(t, registrytest.Options{Token: true})
	s, err := Open(reg.URL("kiln"), Options{CredentialsFile: reg.CredentialsFile(t, reg.User, reg.Password)})
	if err != nil {
		t.Fatal(err)
	}
	src := newMemStore()
	v := basicVersion(t, src)
	if _, err := s.PushVersion(ctx, v, src); err != nil {
		t.Fatalf("push with a token: %v", err)
	}
	p, err := s.Verify(ctx, v.Image, "1")
	if err != nil {
		t.Fatalf("pull with a token: %v", err)
	}
	if len(p.Envelope) == 0 || p.Layers[0].Digest != v.Layers[0].Digest {
		t.Errorf("pulled %+v", p)
	}
	if reg.Tokens.Load() == 0 {
		t.Error("the token server issued no token")
	}

	wrong, err := Open(reg.URL("kiln"), Options{CredentialsFile: reg.CredentialsFile(t, reg.User, "wrong")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = wrong.PullVersion(ctx, v.Image, "1")
	if kiln.ErrorCode(err) != kiln.EUNAUTH || !strings.Contains(err.Error(), "--artifacts-credentials") || !strings.Contains(err.Error(), reg.Host) {
		t.Errorf("pull with a wrong password = %v; want unauthorized naming the host and the flag", err)
	}
	anon, err := Open(reg.URL("kiln"), Options{CredentialsFile: emptyCredentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = anon.PullVersion(ctx, v.Image, "1")
	if kiln.ErrorCode(err) != kiln.EUNAUTH || !strings.Contains(err.Error(), reg.URL("kiln")) || !strings.Contains(err.Error(), "--artifacts-credentials") {
		t.Errorf("anonymous pull = %v; want unauthorized naming the URL and the flag", err)
	}
}

package client_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/client"
	"github.com/kiln-project/kiln/sign"
)

func newSigner(t *testing.T) *sign.Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sign.NewSigner(key)
}

// fakeKeyServer answers GET /api/v1/signing-key with body, as a server
// that lies or is broken would; no real kiln server sends these.
func fakeKeyServer(t *testing.T, body any) *client.Client {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/signing-key" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(ts.Close)
	c, err := client.New(ts.URL, "kiln_test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The key is returned as kiln key export prints it; an answer whose key id
// is not the key's, or that is not an ed25519 public key, is refused.
func TestSigningKeyPEM(t *testing.T) {
	s, other := newSigner(t), newSigner(t)
	ctx := context.Background()
	pem, err := fakeKeyServer(t, map[string]string{"key_id": s.KeyID(), "public_key_pem": string(s.PublicKeyPEM())}).SigningKeyPEM(ctx)
	if err != nil || string(pem) != string(s.PublicKeyPEM()) {
		t.Errorf("good answer: %q, %v", pem, err)
	}
	for _, c := range []struct {
		name string
		body map[string]string
		says string
	}{
		{"key id of another key", map[string]string{"key_id": other.KeyID(), "public_key_pem": string(s.PublicKeyPEM())}, "whose id is " + s.KeyID()},
		{"not PEM", map[string]string{"key_id": s.KeyID(), "public_key_pem": "hello"}, "not PEM"},
		{"private key", map[string]string{"key_id": s.KeyID(), "public_key_pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}, "private key"},
	} {
		_, err := fakeKeyServer(t, c.body).SigningKeyPEM(ctx)
		if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(kiln.ErrorMessage(err), c.says) {
			t.Errorf("%s: %v; want EINVALID saying %q", c.name, err, c.says)
		}
	}
}

// Against the real API: the envelope comes back as stored, and a version
// without one or an unknown version is ENOTFOUND.
func TestProvenanceOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	s := newSigner(t)
	db.SealVersionsWith(s.Seal)
	ctx := context.Background()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("ab", 32)
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Artifact: &kiln.Artifact{Ref: "local:" + digest, Digest: digest, Size: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web"}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(url, toks[kiln.RoleViewer], nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := c.Provenance(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := db.Attachment(ctx, v.Ref(), sign.EnvelopeAttachment)
	if string(env) != string(stored.Data) {
		t.Errorf("envelope %s; stored %s", env, stored.Data)
	}
	if err := sign.VerifyVersion(s.Public(), env, v); err != nil {
		t.Error(err)
	}
	for _, ref := range []kiln.VersionRef{{Image: "web", Number: 2}, {Image: "web", Number: 9}} {
		if _, err := c.Provenance(ctx, ref); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(kiln.ErrorMessage(err), ref.String()) {
			t.Errorf("%s: %v; want ENOTFOUND naming it", ref, err)
		}
	}
	// This test server publishes no key.
	if _, err := c.SigningKeyPEM(ctx); kiln.ErrorCode(err) != kiln.EUNAVAILABLE {
		t.Errorf("server without a key: %v; want EUNAVAILABLE", err)
	}
}

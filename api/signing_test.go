package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// signingServer is a server whose database signs versions, as kiln serve
// runs it, with one token per role. It records web-1 (signed, with an
// artifact) and web-2 (no artifact, so unsigned).
func signingServer(t *testing.T, publish bool) (*httptest.Server, *store.DB, *sign.Signer, map[kiln.Role]string) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", t.TempDir(), slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewSigner(key)
	db.SealVersionsWith(signer.Seal)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("3c", 32)
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", SemVer: "1.0.0", Provenance: kiln.Provenance{
		Artifact: &kiln.Artifact{Ref: "local:" + digest, Digest: digest, Size: 42}, BuiltBy: "ci",
		Packages: []kiln.Package{{Name: "nginx", Version: "1.22.1-9", Architecture: "amd64"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web"}); err != nil {
		t.Fatal(err)
	}
	cfg := api.Config{}.WithStores(db)
	if publish {
		cfg.SigningKey = signer.Public()
	}
	ts := httptest.NewServer(api.New(cfg))
	t.Cleanup(ts.Close)
	toks := map[kiln.Role]string{}
	for _, r := range kiln.Roles {
		_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: string(r), Role: r})
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = secret
	}
	return ts, db, signer, toks
}

// getRaw sends GET path with token and returns the status, Content-Type
// and body as they came.
func getRaw(t *testing.T, ts *httptest.Server, token, path string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// A viewer gets the public key, with the id kiln computes for it; an
// agent (which only checks in) does not.
func TestSigningKeyOverHTTP(t *testing.T) {
	ts, _, signer, toks := signingServer(t, true)
	code, m := doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/signing-key", "")
	if code != 200 {
		t.Fatalf("viewer: %d %v", code, m)
	}
	if m["key_id"] != signer.KeyID() || m["public_key_pem"] != string(signer.PublicKeyPEM()) {
		t.Errorf("answer %v; want key %s and its PEM", m, signer.KeyID())
	}
	pub, err := sign.ParsePublicKeyPEM([]byte(m["public_key_pem"].(string)))
	if err != nil || !pub.Equal(signer.Public()) {
		t.Errorf("the PEM does not hold the signer's key: %v", err)
	}
	if bytes.Contains([]byte(m["public_key_pem"].(string)), []byte("PRIVATE")) {
		t.Error("the answer holds a private key")
	}
	if code, m := doAs(t, ts, toks[kiln.RoleAgent], "GET", "/api/v1/signing-key", ""); code != 403 || m["code"] != kiln.EFORBIDDEN {
		t.Errorf("agent: %d %v, want 403", code, m)
	}
	if code, m := doAs(t, ts, "", "GET", "/api/v1/signing-key", ""); code != 401 {
		t.Errorf("no token: %d %v, want 401", code, m)
	}
}

// A server started without a key says so, and where to get one.
func TestSigningKeyNotConfigured(t *testing.T) {
	ts, _, _, toks := signingServer(t, false)
	code, m := doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/signing-key", "")
	msg, _ := m["message"].(string)
	if code != 503 || m["code"] != kiln.EUNAVAILABLE || !strings.Contains(msg, "no provenance signing key") || !strings.Contains(msg, "kiln key export") {
		t.Errorf("%d %v; want 503 saying there is no key and how to get one", code, m)
	}
}

// The provenance route hands back the stored envelope byte for byte, and
// it verifies against the version's record with the server's key.
func TestProvenanceOverHTTP(t *testing.T) {
	ts, db, signer, toks := signingServer(t, true)
	ctx := context.Background()
	ref := kiln.VersionRef{Image: "web", Number: 1}
	stored, err := db.Attachment(ctx, ref, sign.EnvelopeAttachment)
	if err != nil {
		t.Fatal(err)
	}
	code, ctype, body := getRaw(t, ts, toks[kiln.RoleViewer], "/api/v1/images/web/versions/1/provenance")
	if code != 200 {
		t.Fatalf("viewer: %d %s", code, body)
	}
	if !bytes.Equal(body, stored.Data) {
		t.Errorf("body is not the stored envelope:\n%s\nstored:\n%s", body, stored.Data)
	}
	if !strings.HasSuffix(ctype, "json") {
		t.Errorf("Content-Type %q", ctype)
	}
	var env struct {
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.PayloadType != sign.PayloadType || len(env.Signatures) != 1 || env.Signatures[0].KeyID != signer.KeyID() {
		t.Errorf("not a DSSE envelope signed by %s: %+v (%v)", signer.KeyID(), env, err)
	}
	v, err := db.FindVersion(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyVersion(signer.Public(), body, v); err != nil {
		t.Errorf("the served envelope does not verify: %v", err)
	}

	for _, c := range []struct {
		name, token, path string
		status            int
		code, says        string
	}{
		{"agent", toks[kiln.RoleAgent], "/api/v1/images/web/versions/1/provenance", 403, kiln.EFORBIDDEN, "viewer"},
		{"unknown version", toks[kiln.RoleViewer], "/api/v1/images/web/versions/9/provenance", 404, kiln.ENOTFOUND, "web-9"},
		{"unknown image", toks[kiln.RoleViewer], "/api/v1/images/nope/versions/1/provenance", 404, kiln.ENOTFOUND, "nope"},
		{"no artifact", toks[kiln.RoleViewer], "/api/v1/images/web/versions/2/provenance", 404, kiln.ENOTFOUND, "web-2 has no signed provenance: it has no artifact"},
		{"bad number", toks[kiln.RoleViewer], "/api/v1/images/web/versions/0/provenance", 400, kiln.EINVALID, ""},
	} {
		code, m := doAs(t, ts, c.token, "GET", c.path, "")
		msg, _ := m["message"].(string)
		if code != c.status || m["code"] != c.code || !strings.Contains(msg, c.says) {
			t.Errorf("%s: %d %v; want %d %s saying %q", c.name, code, m, c.status, c.code, c.says)
		}
	}
}

// A version registered through the API was not built by kiln: its signed
// statement names the token that recorded it, so the signature reads
// "recorded by kiln" and not "built by kiln", whatever built_by claims.
func TestExternalVersionIsMarkedInSignedStatement(t *testing.T) {
	ts, db, signer, toks := signingServer(t, true)
	digest := "sha256:" + strings.Repeat("4d", 32)
	code, m := doAs(t, ts, toks[kiln.RoleBuilder], "POST", "/api/v1/images/web/versions",
		`{"built_by":"kiln-worker@build-1","artifact":{"ref":"local:`+digest+`","digest":"`+digest+`","size":7}}`)
	if code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	num := int(m["number"].(float64))
	_, _, body := getRaw(t, ts, toks[kiln.RoleViewer], fmt.Sprintf("/api/v1/images/web/versions/%d/provenance", num))
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(env.Payload)
	var st sign.Statement
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	p := st.Predicate.Provenance
	if p.RecordedBy != "token:builder" || p.BuiltBy != "kiln-worker@build-1" || !p.External() {
		t.Fatalf("signed provenance: recorded_by %q built_by %q", p.RecordedBy, p.BuiltBy)
	}
	v, err := db.FindVersion(context.Background(), kiln.VersionRef{Image: "web", Number: num})
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyVersion(signer.Public(), body, v); err != nil {
		t.Errorf("the envelope does not verify against the stored record: %v", err)
	}
	// kiln's own record (web-1, made by the store directly here as a build
	// does) carries no recorder.
	v1, _ := db.FindVersion(context.Background(), kiln.VersionRef{Image: "web", Number: 1})
	if v1.Provenance.External() {
		t.Errorf("web-1 marked external: %+v", v1.Provenance)
	}
}

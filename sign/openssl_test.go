package sign

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
)

// These tests prove a consumer can check kiln's signatures with standard
// tools and no kiln code: openssl verifies the ed25519 signature over the
// PAE, and the shell recipe in docs/signing.md is run as written.

// needTool returns the path of an external tool, skipping the test when it
// is missing, or failing it under CI=true, where scripts/deps.sh has
// installed it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	return ci.Tool(t, name, name)
}

func run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOpenSSLKeyInterop: a key made by `openssl genpkey` loads; the key id
// equals sha256 of the DER public key as openssl exports it; and openssl
// reads the key file kiln creates.
func TestOpenSSLKeyInterop(t *testing.T) {
	openssl := needTool(t, "openssl")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.key")
	if out, err := run(t, dir, openssl, "genpkey", "-algorithm", "ed25519", "-out", keyFile); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _, err := LoadOrCreateKey("", keyFile)
	if err != nil {
		t.Fatalf("load an openssl key: %v", err)
	}
	der, err := exec.Command(openssl, "pkey", "-in", keyFile, "-pubout", "-outform", "DER").Output()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if id := hex.EncodeToString(sum[:]); id != s.KeyID() {
		t.Errorf("key id %s; openssl's DER public key hashes to %s", s.KeyID(), id)
	}
	pubPEM, err := exec.Command(openssl, "pkey", "-in", keyFile, "-pubout").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pubPEM, s.PublicKeyPEM()) {
		t.Errorf("PublicKeyPEM:\n%s\nopenssl:\n%s", s.PublicKeyPEM(), pubPEM)
	}

	// The other way: openssl reads the key kiln creates.
	created, _, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	pubPEM, err = exec.Command(openssl, "pkey", "-in", created.Path(), "-pubout").Output()
	if err != nil {
		t.Fatalf("openssl cannot read the key kiln created: %v", err)
	}
	if !bytes.Equal(pubPEM, created.PublicKeyPEM()) {
		t.Errorf("openssl derives another public key from kiln's key file:\n%s", pubPEM)
	}
}

// TestOpenSSLVerifiesEnvelope checks kiln's signature with `openssl
// pkeyutl -verify -rawin` over the PAE bytes, and that openssl rejects a
// changed payload.
func TestOpenSSLVerifiesEnvelope(t *testing.T) {
	openssl := needTool(t, "openssl")
	dir := t.TempDir()
	s := newTestSigner(t)
	env, err := s.SignVersion(testVersion())
	if err != nil {
		t.Fatal(err)
	}
	var e dsse.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("kiln.pub", s.PublicKeyPEM())
	write("sig.bin", sig)
	write("pae.bin", dsse.PAE(e.PayloadType, payload))
	verify := []string{"pkeyutl", "-verify", "-pubin", "-inkey", "kiln.pub", "-rawin", "-in", "pae.bin", "-sigfile", "sig.bin"}
	if out, err := run(t, dir, openssl, verify...); err != nil || !strings.Contains(out, "Signature Verified Successfully") {
		t.Fatalf("openssl does not verify kiln's signature: %v\n%s", err, out)
	}
	write("pae.bin", dsse.PAE(e.PayloadType, bytes.Replace(payload, []byte(`"number":3`), []byte(`"number":4`), 1)))
	if out, err := run(t, dir, openssl, verify...); err == nil {
		t.Fatalf("openssl verified a changed payload:\n%s", out)
	}
}

// recipe returns the shell block after the marker in docs/signing.md.
func recipe(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/signing.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- recipe: verify-with-openssl -->\n```sh\n"
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/signing.md has no %q block", marker)
	}
	script, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatal("the recipe block in docs/signing.md is not closed")
	}
	return script + "\n"
}

// TestDocumentedOpenSSLRecipe runs the consumer's recipe from
// docs/signing.md on a real envelope and artifact, then on tampered ones.
func TestDocumentedOpenSSLRecipe(t *testing.T) {
	for _, tool := range []string{"openssl", "jq", "base64", "sha256sum", "bash"} {
		needTool(t, tool)
	}
	script := recipe(t)
	s := newTestSigner(t)
	artifact := []byte("a disk image, or any bytes\n")
	sum := sha256.Sum256(artifact)
	v := testVersion()
	v.Provenance.Artifact.Digest = "sha256:" + hex.EncodeToString(sum[:])
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyVersion(s.Public(), env, v); err != nil {
		t.Fatal(err)
	}

	try := func(envelope, art []byte) (string, error) {
		dir := t.TempDir()
		for f, b := range map[string][]byte{"envelope.json": envelope, "kiln.pub": s.PublicKeyPEM(), "artifact": art} {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return run(t, dir, "bash", "-c", script)
	}
	out, err := try(env, artifact)
	if err != nil {
		t.Fatalf("the documented recipe rejects a good envelope: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Signature Verified Successfully") || !strings.Contains(out, "verified: appserver-3 sha256:"+hex.EncodeToString(sum[:])) {
		t.Errorf("recipe output:\n%s", out)
	}

	changed := tamper(t, env, func(e *dsse.Envelope) {
		p, _ := base64.StdEncoding.DecodeString(e.Payload)
		e.Payload = base64.StdEncoding.EncodeToString(bytes.Replace(p, []byte(`"built_by":"kiln-worker@build1"`), []byte(`"built_by":"kiln-worker@build2"`), 1))
	})
	for _, tc := range []struct {
		name     string
		envelope []byte
		artifact []byte
		want     string
	}{
		{"changed statement", changed, artifact, "Signature Verification Failure"},
		{"swapped artifact", env, []byte("another image\n"), "is not the signed"},
		{"other key", mustSign(t, newTestSigner(t), v), artifact, "Signature Verification Failure"},
	} {
		out, err := try(tc.envelope, tc.artifact)
		if err == nil {
			t.Errorf("%s: the recipe accepted it:\n%s", tc.name, out)
		} else if !strings.Contains(out, tc.want) {
			t.Errorf("%s: output does not say %q:\n%s", tc.name, tc.want, out)
		}
	}
}

func mustSign(t *testing.T, s *Signer, v *kiln.Version) []byte {
	t.Helper()
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

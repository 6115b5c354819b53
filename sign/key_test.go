package sign

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

func TestLoadOrCreateKeyCreatesOnceAndReuses(t *testing.T) {
	dir := t.TempDir()
	s1, created, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("first call: created = false")
	}
	path := filepath.Join(dir, "keys", "signing.key")
	if s1.Path() != path {
		t.Errorf("Path = %q; want %q", s1.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o; want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %04o; want 0700", di.Mode().Perm())
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "keys", ".signing-*")); len(tmp) > 0 {
		t.Errorf("temporary files left behind: %v", tmp)
	}

	s2, created, err := LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second call: created = true; the key must be reused")
	}
	if !s1.Public().Equal(s2.Public()) || s1.KeyID() != s2.KeyID() {
		t.Errorf("second call gave another key: %s vs %s", s1.KeyID(), s2.KeyID())
	}

	// The same file given by path is the same key, and is not "created".
	s3, created, err := LoadOrCreateKey("", path)
	if err != nil || created || s3.KeyID() != s1.KeyID() {
		t.Errorf("by path: %v created=%v id %s; want the same key %s", err, created, s3.KeyID(), s1.KeyID())
	}
}

func TestLoadOrCreateKeyConcurrentFirstStart(t *testing.T) {
	dir := t.TempDir()
	const n = 8
	ids := make([]string, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, c, err := LoadOrCreateKey(dir, "")
			if err != nil {
				t.Error(err)
				return
			}
			ids[i], created[i] = s.KeyID(), c
		})
	}
	wg.Wait()
	nCreated := 0
	for i := range n {
		if ids[i] != ids[0] {
			t.Errorf("caller %d got key %s, caller 0 got %s; concurrent starts must agree on one key", i, ids[i], ids[0])
		}
		if created[i] {
			nCreated++
		}
	}
	if nCreated != 1 {
		t.Errorf("%d callers report creating the key; want exactly 1", nCreated)
	}
}

func TestLoadOrCreateKeyRefusesOpenModes(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644, 0o602} {
		dir := t.TempDir()
		s, _, err := LoadOrCreateKey(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(s.Path(), mode); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][2]string{{dir, ""}, {"", s.Path()}} {
			_, _, err = LoadOrCreateKey(args[0], args[1])
			if kiln.ErrorCode(err) != kiln.EINVALID {
				t.Fatalf("mode %04o: err = %v; want EINVALID", mode, err)
			}
			if msg := err.Error(); !strings.Contains(msg, "chmod 600 "+s.Path()) {
				t.Errorf("mode %04o: message %q does not say `chmod 600 %s`", mode, msg, s.Path())
			}
		}
	}
}

func TestLoadOrCreateKeyGivenPath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope.key")
	_, _, err := LoadOrCreateKey(dir, missing)
	if kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "openssl genpkey -algorithm ed25519") {
		t.Errorf("missing key file: %v; want ENOTFOUND saying how to create one", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a key file given by path was created")
	}

	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	pubDER, _ := x509.MarshalPKIXPublicKey(edKey.Public())
	for _, tc := range []struct {
		name, file string
		data       []byte
		want       string
	}{
		{"not PEM", "garbage.key", []byte("hello"), "is not PEM"},
		{"ECDSA", "ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), "of type ECDSA"},
		{"public key", "pub.key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), `PEM "PUBLIC KEY" block`},
		{"bad DER", "bad.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "not a valid PKCS#8"},
		{"too big", "big.key", bytes.Repeat([]byte("A"), maxKeyFile+1), "is over"},
	} {
		p := write(tc.file, tc.data)
		_, _, err := LoadOrCreateKey(dir, p)
		if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err = %v; want EINVALID naming %s and saying %q", tc.name, err, p, tc.want)
		}
	}

	p := write("ed.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edDER}))
	s, created, err := LoadOrCreateKey(dir, p)
	if err != nil || created {
		t.Fatalf("valid key: %v, created=%v", err, created)
	}
	if !s.Public().Equal(edKey.Public()) {
		t.Error("loaded another key than the one written")
	}

	// A key file must be a regular file.
	if _, _, err := LoadOrCreateKey(dir, dir); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("directory as key: %v; want EINVALID", err)
	}
	if _, _, err := LoadOrCreateKey("", ""); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("no data dir and no path: %v; want EINVALID", err)
	}
}

func TestPublicKeyPEMRoundTrip(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := NewSigner(key)
	pub, err := ParsePublicKeyPEM(s.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(s.Public()) {
		t.Error("parsed public key differs")
	}
	id, err := KeyID(pub)
	if err != nil || id != s.KeyID() || len(id) != 64 {
		t.Errorf("KeyID = %q, %v; want the signer's 64-hex id %q", id, err, s.KeyID())
	}

	der, _ := x509.MarshalPKCS8PrivateKey(key)
	_, err = ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "private key") {
		t.Errorf("private key given as public: %v", err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	_, err = ParsePublicKeyPEM(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: ecDER}))
	if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "ECDSA") {
		t.Errorf("ECDSA public key: %v", err)
	}
	if _, err := ParsePublicKeyPEM([]byte("not pem")); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("not PEM: %v", err)
	}
}

// TestLoadOrCreateKeyRemovesStaleTemp: a temporary key file left by a
// killed first start is removed by the next one; a fresh one (another
// process creating its key right now) is kept.
func TestLoadOrCreateKeyRemovesStaleTemp(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if err := os.MkdirAll(keys, 0o700); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(keys, ".signing-123.tmp")
	fresh := filepath.Join(keys, ".signing-456.tmp")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half a key"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKey(dir, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temporary key file still there (%v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file was removed: %v", err)
	}
}

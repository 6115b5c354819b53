package sign

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kiln-project/kiln"
)

// DefaultKeyPath is where kiln keeps its signing key, relative to the data
// directory, when no key file is given.
const DefaultKeyPath = "keys/signing.key"

// maxKeyFile bounds what LoadOrCreateKey reads: a PEM ed25519 key is
// about 120 bytes, so anything much larger is not one.
const maxKeyFile = 64 << 10

// TrustedKeysDir is where kiln keeps the public keys it still accepts
// signatures from besides its signing key's (the keys `kiln key rotate`
// retired), relative to the data directory: one PEM file per key, *.pub.
const TrustedKeysDir = "keys/trusted"

// Signer signs versions with one ed25519 key and knows the keys whose
// signatures kiln accepts: its own and the trusted ones.
type Signer struct {
	key     ed25519.PrivateKey
	pub     ed25519.PublicKey
	id      string
	path    string
	trusted []TrustedKey
}

// TrustedKey is a public key kiln accepts signatures from without signing
// with it (a key `kiln key rotate` retired).
type TrustedKey struct {
	ID   string
	Key  ed25519.PublicKey
	Path string
}

// NewSigner returns a Signer for key, which it does not copy. It is for
// keys kept elsewhere than a file (tests, a secret manager); the server
// uses LoadOrCreateKey.
func NewSigner(key ed25519.PrivateKey) *Signer {
	pub := key.Public().(ed25519.PublicKey)
	id, _ := KeyID(pub) // cannot fail for an ed25519 key
	return &Signer{key: key, pub: pub, id: id}
}

// LoadOrCreateKey returns the signer for the key file at path. When path is
// "" it uses <dataDir>/keys/signing.key and, on first use, creates an
// ed25519 key there (directory mode 0700, file mode 0600), reporting
// created=true. A key file given by path is never created: a missing one is
// an error, so a typo cannot silently start a new key.
//
// The file holds a PEM "PRIVATE KEY" block (PKCS#8), the format `openssl
// genpkey -algorithm ed25519` writes. A file that group or others can read
// or write is refused. Concurrent first starts agree on one key: the new key
// is written to a temporary file and linked into place only if no key is
// there yet.
//
// Errors: ENOTFOUND for a missing key file given by path; EINVALID for a
// file that is not an unencrypted ed25519 PKCS#8 key or whose mode is too
// open.
//
// The signer also trusts the public keys in <dataDir>/keys/trusted (see
// Keys).
func LoadOrCreateKey(dataDir, path string) (s *Signer, created bool, err error) {
	return LoadOrCreateKeyUnless(dataDir, path, nil)
}

// LoadOrCreateKeyUnless is LoadOrCreateKey that, before creating the
// default key, asks refuse: a non-nil error from it is returned instead
// of a new key. kiln refuses so when the database holds versions signed
// by a key that is now missing: a new key would make them all fail to
// verify, so the old key must be restored (or rotated out on purpose).
func LoadOrCreateKeyUnless(dataDir, path string, refuse func(path string) error) (s *Signer, created bool, err error) {
	defer func() {
		if err == nil && dataDir != "" {
			if s.trusted, err = LoadTrustedKeys(dataDir); err != nil {
				s = nil
			}
		}
	}()
	if path != "" {
		s, err := loadKey(path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, false, kiln.Errorf(kiln.ENOTFOUND,
				"signing key %s does not exist; create one with `openssl genpkey -algorithm ed25519 -out %s && chmod 600 %s`, or give no key file to let kiln create one under its data directory",
				path, path, path)
		}
		return s, false, err
	}
	if dataDir == "" {
		return nil, false, kiln.Errorf(kiln.EINVALID, "no data directory and no signing key file given; kiln needs one of them to find its signing key")
	}
	path = filepath.Join(dataDir, DefaultKeyPath)
	s, err = loadKey(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	if refuse != nil {
		if err := refuse(path); err != nil {
			return nil, false, err
		}
	}
	s, err = createKey(path)
	if errors.Is(err, fs.ErrExist) {
		// Another process created the key between our read and our link.
		s, err = loadKey(path)
		return s, false, err
	}
	if err != nil {
		return nil, false, err
	}
	return s, true, nil
}

// loadKey reads and checks the key file at path. A missing file is
// returned as an error wrapping fs.ErrNotExist.
func loadKey(path string) (*Signer, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open signing key: %w", err)
	}
	defer f.Close()
	// Stat the opened file, not the path, so the mode checked is the mode
	// of the file read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat signing key %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, kiln.Errorf(kiln.EINVALID, "signing key %s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, kiln.Errorf(kiln.EINVALID,
			"signing key %s has mode %04o, so users other than its owner can read or change it; run `chmod 600 %s` (and consider the key exposed if others could read it)",
			path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("read signing key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, kiln.Errorf(kiln.EINVALID, "signing key %s is over %d bytes; a PEM ed25519 key is about 120, so this is not one", path, maxKeyFile)
	}
	key, err := parsePrivateKeyPEM(path, data)
	if err != nil {
		return nil, err
	}
	s := NewSigner(key)
	s.path = path
	return s, nil
}

// parsePrivateKeyPEM decodes a PEM PKCS#8 ed25519 private key. Messages
// name the file but never quote its content.
func parsePrivateKeyPEM(path string, data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "signing key %s is not PEM; kiln expects a \"PRIVATE KEY\" block as written by `openssl genpkey -algorithm ed25519`", path)
	}
	if block.Type != "PRIVATE KEY" {
		return nil, kiln.Errorf(kiln.EINVALID, "signing key %s holds a PEM %q block; kiln expects an unencrypted PKCS#8 \"PRIVATE KEY\" block as written by `openssl genpkey -algorithm ed25519`", path, block.Type)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "signing key %s is not a valid PKCS#8 private key; create one with `openssl genpkey -algorithm ed25519`", path)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, kiln.Errorf(kiln.EINVALID, "signing key %s holds a key of type %s; kiln signs with ed25519 only; create one with `openssl genpkey -algorithm ed25519`", path, keyType(k))
	}
	return key, nil
}

func keyType(k any) string {
	switch k.(type) {
	case *rsa.PrivateKey, *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return "ECDSA"
	case *ecdh.PrivateKey, *ecdh.PublicKey:
		return "X25519 (ECDH)"
	}
	return fmt.Sprintf("%T", k)
}

// createKey writes a new key to path without ever replacing an existing
// one: it fails with an error wrapping fs.ErrExist when path exists. The
// temporary file is removed whatever happens.
func createKey(path string) (*Signer, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create signing key directory: %w", err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})

	removeStaleTemp(dir)
	tmp, err := os.CreateTemp(dir, tempPattern) // mode 0600
	if err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	// Link, unlike rename, refuses to replace a key another process
	// created meanwhile; the deferred Remove drops the temporary name.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		return nil, fmt.Errorf("install signing key %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // make the new name durable; best effort
		d.Close()
	}
	s := NewSigner(key)
	s.path = path
	return s, nil
}

// tempPattern names the temporary files createKey writes.
const tempPattern = ".signing-*.tmp"

// removeStaleTemp deletes temporary key files a killed kiln left behind.
// Only files older than a minute go, so a concurrent first start keeps its
// own.
func removeStaleTemp(dir string) {
	stale, _ := filepath.Glob(filepath.Join(dir, tempPattern))
	for _, p := range stale {
		if fi, err := os.Lstat(p); err == nil && time.Since(fi.ModTime()) > time.Minute {
			_ = os.Remove(p)
		}
	}
}

// KeyID returns the id kiln gives a public key: the lowercase hex SHA-256 of
// its DER PKIX (SubjectPublicKeyInfo) encoding, all 64 digits. It equals
// `openssl pkey -pubin -outform DER | sha256sum` of the exported key.
func KeyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", kiln.Errorf(kiln.EINVALID, "cannot compute a key id: %v", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}

// KeyID returns the signer's key id (see the function KeyID).
func (s *Signer) KeyID() string { return s.id }

// Public returns the signer's ed25519 public key.
func (s *Signer) Public() ed25519.PublicKey { return s.pub }

// Keys returns every public key whose signatures kiln accepts: the
// signer's own first, then the trusted ones (keys rotated out).
func (s *Signer) Keys() []ed25519.PublicKey {
	keys := []ed25519.PublicKey{s.pub}
	for _, t := range s.trusted {
		keys = append(keys, t.Key)
	}
	return keys
}

// Trusted returns the trusted keys besides the signer's own.
func (s *Signer) Trusted() []TrustedKey { return append([]TrustedKey(nil), s.trusted...) }

// LoadTrustedKeys reads <dataDir>/keys/trusted/*.pub, sorted by file
// name; a missing directory holds none. A file that is not a PEM ed25519
// public key is an error naming it.
func LoadTrustedKeys(dataDir string) ([]TrustedKey, error) {
	files, err := filepath.Glob(filepath.Join(dataDir, TrustedKeysDir, "*.pub"))
	if err != nil {
		return nil, err
	}
	var out []TrustedKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read trusted key: %w", err)
		}
		pub, err := ParsePublicKeyPEM(data)
		if err != nil {
			return nil, kiln.Errorf(kiln.EINVALID, "trusted key %s: %s; put only `kiln key export` output (*.pub) in %s", f, kiln.ErrorMessage(err), filepath.Dir(f))
		}
		id, _ := KeyID(pub)
		out = append(out, TrustedKey{ID: id, Key: pub, Path: f})
	}
	return out, nil
}

// Rotation is what RotateKey did.
type Rotation struct {
	// Old and New are the key ids; TrustedPath is where the old public
	// key now is, RetiredPath where the old private key was moved.
	Old, New                 string
	TrustedPath, RetiredPath string
	Signer                   *Signer
}

// RotateKey replaces the default signing key <dataDir>/keys/signing.key
// with a new one. The old public key goes to keys/trusted/<id>.pub, so
// versions it signed still verify and launch, and the old private key to
// keys/retired/<id>.key (mode 0600) for the operator to back up or
// destroy; kiln never signs with it again. Run it with no kiln serve
// running on the data directory (the server loads its key at start).
func RotateKey(dataDir string) (*Rotation, error) {
	if dataDir == "" {
		return nil, kiln.Errorf(kiln.EINVALID, "no data directory given; kiln rotates the key under DATA-DIR/keys")
	}
	path := filepath.Join(dataDir, DefaultKeyPath)
	old, err := loadKey(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "there is no signing key %s to rotate; restore it from a backup first (or, if it is lost for good, see docs/signing.md)", path)
	}
	if err != nil {
		return nil, err
	}
	trustedDir := filepath.Join(dataDir, TrustedKeysDir)
	retiredDir := filepath.Join(dataDir, "keys", "retired")
	for _, d := range []string{trustedDir, retiredDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("rotate signing key: %w", err)
		}
	}
	r := &Rotation{Old: old.id, TrustedPath: filepath.Join(trustedDir, old.id+".pub"), RetiredPath: filepath.Join(retiredDir, old.id+".key")}
	// The old public key is trusted before the old key leaves its place:
	// an interruption leaves versions verifiable, never orphaned.
	if err := os.WriteFile(r.TrustedPath, old.PublicKeyPEM(), 0o644); err != nil {
		return nil, fmt.Errorf("keep the old public key: %w", err)
	}
	if err := os.Link(path, r.RetiredPath); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("keep the old private key: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return nil, fmt.Errorf("retire the old signing key: %w", err)
	}
	s, err := createKey(path)
	if err != nil {
		return nil, fmt.Errorf("create the new signing key (the old one is in %s; move it back to %s to undo): %w", r.RetiredPath, path, err)
	}
	if s.trusted, err = LoadTrustedKeys(dataDir); err != nil {
		return nil, err
	}
	r.New, r.Signer = s.id, s
	return r, nil
}

// Path returns the key file the signer was loaded from, or "" for a key
// given to NewSigner.
func (s *Signer) Path() string { return s.path }

// PublicKeyPEM returns the public key as a PEM "PUBLIC KEY" block (PKIX),
// the form `kiln key export` prints and openssl reads.
func (s *Signer) PublicKeyPEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(s.pub)
	if err != nil {
		panic("sign: marshal ed25519 public key: " + err.Error()) // cannot happen for ed25519
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// ParsePublicKeyPEM reads an ed25519 public key from a PEM "PUBLIC KEY"
// block, as PublicKeyPEM and `openssl pkey -pubout` write. EINVALID for
// anything else, including a private key given by mistake.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "public key is not PEM; give the output of `kiln key export` (a \"PUBLIC KEY\" block)")
	}
	if block.Type != "PUBLIC KEY" {
		if block.Type == "PRIVATE KEY" || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, kiln.Errorf(kiln.EINVALID, "a private key was given where the public key belongs; give the output of `kiln key export`, and keep the private key secret")
		}
		return nil, kiln.Errorf(kiln.EINVALID, "public key is a PEM %q block; give the output of `kiln key export` (a \"PUBLIC KEY\" block)", block.Type)
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "public key is not a valid PKIX public key: %v", err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, kiln.Errorf(kiln.EINVALID, "public key is of type %s; kiln signs with ed25519 only", keyType(k))
	}
	return pub, nil
}

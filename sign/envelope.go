package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/kiln-project/kiln"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// maxEnvelope bounds the envelope VerifyVersion accepts. A statement with
// a few thousand packages is a few hundred KiB.
const maxEnvelope = 32 << 20

// SignVersion returns a DSSE envelope (JSON) holding v's in-toto statement
// (see NewStatement), signed with the signer's key. Signing is
// deterministic: the same version and key give the same bytes.
//
// EINVALID when v has no artifact.
func (s *Signer) SignVersion(v *kiln.Version) ([]byte, error) {
	st, err := NewStatement(v)
	if err != nil {
		return nil, err
	}
	payload, err := st.Marshal()
	if err != nil {
		return nil, err
	}
	return s.signEnvelope(PayloadType, payload, v.Ref().String())
}

// signEnvelope signs payload of payloadType with the signer's key and
// returns the DSSE envelope as JSON; what names the statement in errors.
func (s *Signer) signEnvelope(payloadType string, payload []byte, what string) ([]byte, error) {
	es, err := dsse.NewEnvelopeSigner(dsseKey{priv: s.key, pub: s.pub, id: s.id})
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", what, err)
	}
	// ed25519 signing does no I/O, so there is nothing to cancel.
	env, err := es.SignPayload(context.Background(), payloadType, payload)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", what, err)
	}
	b, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("encode the envelope of %s: %w", what, err)
	}
	return b, nil
}

// VerifyVersion checks that envelope is a DSSE envelope signed by pub (an
// ed25519.PublicKey) over an in-toto statement that names v, whose subject
// digest equals v's artifact digest, and whose predicate equals v's
// provenance as recorded now. It does not re-hash the artifact: callers
// compare the stored artifact with v.Provenance.Artifact.Digest.
//
// Errors: EINVALID for a key that is not ed25519, an empty or malformed
// envelope, or a version without an artifact; ECONFLICT when the signature
// does not verify or the signed statement disagrees with v, with a message
// naming the key id, the digests or the fields that differ.
func VerifyVersion(pub crypto.PublicKey, envelope []byte, v *kiln.Version) error {
	return VerifyVersionWith([]crypto.PublicKey{pub}, envelope, v)
}

// VerifyVersionWith is VerifyVersion accepting a signature by any of keys:
// kiln's signing key and the keys it rotated out (Signer.Keys).
func VerifyVersionWith(keys []crypto.PublicKey, envelope []byte, v *kiln.Version) error {
	if v == nil {
		return kiln.Errorf(kiln.EINVALID, "no version given to verify")
	}
	name := v.Ref().String()
	want, err := NewStatement(v)
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return kiln.Errorf(kiln.EINVALID, "no public key to verify %s with", name)
	}
	var vs []dsse.Verifier
	var ids []string
	for _, pub := range keys {
		edpub, ok := pub.(ed25519.PublicKey)
		if !ok || len(edpub) != ed25519.PublicKeySize {
			return kiln.Errorf(kiln.EINVALID, "cannot verify %s with a %T; kiln signs with ed25519 keys (read one with sign.ParsePublicKeyPEM)", name, pub)
		}
		id, err := KeyID(edpub)
		if err != nil {
			return err
		}
		vs = append(vs, dsseKey{pub: edpub, id: id})
		ids = append(ids, id)
	}
	env, err := decodeEnvelope(envelope)
	if err != nil {
		return kiln.Errorf(kiln.EINVALID, "signature envelope of %s: %v", name, err)
	}
	payload, err := openEnvelope(env, 1, vs...)
	if err != nil {
		what := "key " + ids[0]
		if len(ids) > 1 {
			what = fmt.Sprintf("any of the %d trusted keys (%s)", len(ids), strings.Join(ids, ", "))
		}
		return kiln.Errorf(kiln.ECONFLICT, "signature of %s does not verify with %s%s", name, what, keyHint(env, ids[0]))
	}
	// The DSSE protocol checks the payload type after the signature: a
	// signed payload of another type is still not an in-toto statement.
	if env.PayloadType != PayloadType {
		return kiln.Errorf(kiln.ECONFLICT, "the envelope of %s is signed but holds a payload of type %q; kiln signs in-toto statements (%s)", name, env.PayloadType, PayloadType)
	}

	got, err := decodeStatement(payload)
	if err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "the signed payload of %s is not a kiln in-toto statement: %v", name, err)
	}
	if got.Type != StatementType {
		return kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s has _type %q; want %q", name, got.Type, StatementType)
	}
	if got.PredicateType != PredicateType {
		return kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s has predicateType %q; kiln verifies only %q", name, got.PredicateType, PredicateType)
	}
	if len(got.Subject) != len(want.Subject) {
		return kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s has %d subjects; the registry records %d artifacts for it (its root filesystem and %d disk images) — the record of its artifacts was changed after signing, do not launch it",
			name, len(got.Subject), len(want.Subject), len(want.Subject)-1)
	}
	if got.Subject[0].Name != name {
		return kiln.Errorf(kiln.ECONFLICT, "the signed statement is about %s, not %s; the envelope belongs to another version", got.Subject[0].Name, name)
	}
	for i, subj := range got.Subject {
		if subj.Name != want.Subject[i].Name {
			return kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s names artifact %s where the registry has %s; the record of its artifacts was changed after signing — do not launch it", name, subj.Name, want.Subject[i].Name)
		}
		wantDigest := want.Subject[i].Digest["sha256"]
		gotDigest, ok := subj.Digest["sha256"]
		if !ok || len(subj.Digest) != 1 {
			return kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s has no sha256 digest of its artifact %s (or other digests kiln does not check)", name, subj.Name)
		}
		if gotDigest != wantDigest {
			return kiln.Errorf(kiln.ECONFLICT, "artifact digest in the signed statement sha256:%s differs from the registry's sha256:%s for %s; the registry's record of the artifact was changed after signing — do not launch it",
				gotDigest, wantDigest, subj.Name)
		}
	}
	diffs, err := diffPredicates(&got.Predicate, &want.Predicate)
	if err != nil {
		return fmt.Errorf("verify %s: %w", name, err)
	}
	if len(diffs) > 0 {
		return kiln.Errorf(kiln.ECONFLICT, "provenance of %s in the registry differs from the signed statement (%s); the record was changed after signing — do not trust it",
			name, strings.Join(diffs, "; "))
	}
	return nil
}

// openEnvelope checks env's signatures over the PAE of its payload type and
// payload against keys, and returns the payload once at least threshold
// distinct keys verify (the DSSE protocol's multi-signature rule). It does
// not look at the payload type: callers reject unsupported ones after.
func openEnvelope(env *dsse.Envelope, threshold int, keys ...dsse.Verifier) ([]byte, error) {
	ev, err := dsse.NewMultiEnvelopeVerifier(threshold, keys...)
	if err != nil {
		return nil, err
	}
	_, payload, err := ev.VerifyAndDecode(context.Background(), env)
	if err != nil {
		return nil, err
	}
	return payload, nil
}

// decodeEnvelope parses a DSSE JSON envelope strictly and checks its
// base64 up front, so a malformed envelope is told apart from a bad
// signature. Both base64 alphabets are accepted, as the spec requires.
func decodeEnvelope(b []byte) (*dsse.Envelope, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("the envelope is empty; the version was not signed")
	}
	if len(b) > maxEnvelope {
		return nil, fmt.Errorf("the envelope is %d bytes; the limit is %d", len(b), maxEnvelope)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var env dsse.Envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("not a DSSE JSON envelope: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not a DSSE JSON envelope: data after the JSON object")
	}
	if len(env.Signatures) == 0 {
		return nil, errors.New("the envelope carries no signature")
	}
	if _, err := decodeBase64(env.Payload); err != nil {
		return nil, errors.New("payload is not base64")
	}
	for i, s := range env.Signatures {
		if _, err := decodeBase64(s.Sig); err != nil {
			return nil, fmt.Errorf("signatures[%d].sig is not base64", i)
		}
	}
	return &env, nil
}

func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.URLEncoding.DecodeString(s)
	}
	return b, err
}

// keyHint explains a failed signature by the key ids the envelope names.
// Key ids are unauthenticated, so this only guides the reader.
func keyHint(env *dsse.Envelope, id string) string {
	var others []string
	for _, s := range env.Signatures {
		if s.KeyID == id {
			return "; the envelope names this key, so the statement or the signature was changed after signing"
		}
		if s.KeyID != "" {
			others = append(others, s.KeyID)
		}
	}
	if len(others) > 0 {
		return fmt.Sprintf("; the envelope says it was signed by key %s: verify with that key's public key (`kiln key export` on the kiln that signed it), or treat the version as untrusted", strings.Join(others, ", "))
	}
	return ""
}

// dsseKey adapts an ed25519 key to the dsse library's Signer and Verifier.
// It stays unexported so no caller can sign arbitrary bytes with kiln's key.
type dsseKey struct {
	priv ed25519.PrivateKey // nil when only verifying
	pub  ed25519.PublicKey
	id   string
}

var errBadSignature = errors.New("ed25519: signature does not verify")

func (k dsseKey) Sign(_ context.Context, data []byte) ([]byte, error) {
	if k.priv == nil {
		return nil, errors.New("no private key")
	}
	return ed25519.Sign(k.priv, data), nil
}

func (k dsseKey) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(k.pub, data, sig) {
		return errBadSignature
	}
	return nil
}

func (k dsseKey) KeyID() (string, error) { return k.id, nil }

func (k dsseKey) Public() crypto.PublicKey { return k.pub }

var _ dsse.SignerVerifier = dsseKey{}

package sign

import (
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
)

// VerifySigned checks a version's provenance envelope found without
// kiln's record of the version (the referrer of its image in an OCI
// registry, on a machine with no database): the signature by any of keys,
// then the statement on its own terms. It returns the version as the
// signed statement describes it (image, number, semver, provenance) and
// the id of the key that signed it; what the caller holds (an image's
// layers) is then compared with that version's artifact.
//
// what names where the envelope came from, for errors. The statement must
// be self-consistent: its first subject is the version's name with the
// artifact's digest, the further ones its disk images, and a layered
// artifact's digest is that of the layer list of its signed layers
// (kiln.EncodeLayerList), so the one signed digest covers every layer.
//
// Errors: EINVALID for a key that is not ed25519 or a malformed envelope;
// ECONFLICT when no key verifies the signature, or the statement is not
// kiln's provenance or disagrees with itself.
func VerifySigned(keys []crypto.PublicKey, envelope []byte, what string) (*kiln.Version, string, error) {
	if len(keys) == 0 {
		return nil, "", kiln.Errorf(kiln.EINVALID, "no public key to verify %s with", what)
	}
	var vs []dsseKey
	for _, pub := range keys {
		edpub, ok := pub.(ed25519.PublicKey)
		if !ok || len(edpub) != ed25519.PublicKeySize {
			return nil, "", kiln.Errorf(kiln.EINVALID, "cannot verify %s with a %T; kiln signs with ed25519 keys (read one with sign.ParsePublicKeyPEM)", what, pub)
		}
		id, err := KeyID(edpub)
		if err != nil {
			return nil, "", err
		}
		vs = append(vs, dsseKey{pub: edpub, id: id})
	}
	env, err := decodeEnvelope(envelope)
	if err != nil {
		return nil, "", kiln.Errorf(kiln.EINVALID, "%s is not a signature envelope: %v", what, err)
	}
	var payload []byte
	var signer dsseKey
	for _, k := range vs {
		if payload, err = openEnvelope(env, 1, k); err == nil {
			signer = k
			break
		}
	}
	if payload == nil {
		ids := make([]string, len(vs))
		for i, k := range vs {
			ids[i] = k.id
		}
		return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signature of %s does not verify with key %s%s", what, strings.Join(ids, " or "), keyHint(env, ids[0]))
	}
	if env.PayloadType != PayloadType {
		return nil, "", kiln.Errorf(kiln.ECONFLICT, "%s is signed but holds a payload of type %q; kiln signs in-toto statements (%s)", what, env.PayloadType, PayloadType)
	}
	st, err := decodeStatement(payload)
	if err != nil {
		return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signed payload of %s is not a kiln in-toto statement: %v", what, err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateType {
		return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s is %q about %q; kiln verifies only its provenance (%s)", what, st.Type, st.PredicateType, PredicateType)
	}
	p := st.Predicate
	if kiln.ValidateImageName(p.Image) != nil || p.Number < 1 {
		return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s names no valid version (image %q, number %d)", what, p.Image, p.Number)
	}
	v := &kiln.Version{Image: p.Image, Number: p.Number, SemVer: p.SemVer, Provenance: p.Provenance}
	v.Name = v.Ref().String()
	a := v.Provenance.Artifact
	if a == nil || a.External() {
		return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s (%s) names no artifact kiln keeps; there is nothing to verify", what, v.Name)
	}
	if a.Layered() {
		list, err := kiln.EncodeLayerList(a.Layers)
		if err != nil {
			return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signed layers of %s (%s): %s", what, v.Name, kiln.ErrorMessage(err))
		}
		if got := "sha256:" + hexSHA256(list); got != a.Digest {
			return nil, "", kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s (%s) names artifact %s, but the layer list of its signed layers hashes to %s; the statement was not written by kiln — do not trust the image", what, v.Name, a.Digest, got)
		}
	}
	// The statement kiln would sign for that version must be the one
	// signed: subjects (names, digests, disk images) included.
	if err := VerifyVersionWith([]crypto.PublicKey{signer.pub}, envelope, v); err != nil {
		return nil, "", fmt.Errorf("%s: %w", what, err)
	}
	return v, signer.id, nil
}

func hexSHA256(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

package sign

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/kiln-project/kiln"
)

// The in-toto predicate types of SBOM attestations (in-toto/attestation
// spec/predicates/spdx.md and cyclonedx.md).
const (
	PredicateSPDX      = "https://spdx.dev/Document/v2.3"
	PredicateCycloneDX = "https://cyclonedx.org/bom"
)

// SBOMAttachment names the attachment that keeps a version's signed SBOM
// of a predicate type: sbom.spdx.dsse.json or sbom.cdx.dsse.json; "" for
// a type kiln does not write.
func SBOMAttachment(predicateType string) string {
	switch predicateType {
	case PredicateSPDX:
		return "sbom.spdx.dsse.json"
	case PredicateCycloneDX:
		return "sbom.cdx.dsse.json"
	}
	return ""
}

// sbomStatement is an in-toto Statement v1 whose predicate is an SBOM
// document, kept as its JSON.
type sbomStatement struct {
	Type          string          `json:"_type"`
	Subject       []Subject       `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     json.RawMessage `json:"predicate"`
}

// SignSBOM returns a DSSE envelope holding an in-toto statement about v's
// artifact whose predicate is doc, an SBOM of predicateType
// (PredicateSPDX or PredicateCycloneDX). Deterministic like SignVersion.
//
// EINVALID for an unknown predicate type, a doc that is not a JSON object,
// or a version without an artifact digest (an external one has nothing to
// bind the statement to).
func (s *Signer) SignSBOM(v *kiln.Version, predicateType string, doc []byte) ([]byte, error) {
	st, err := newSBOMStatement(v, predicateType, doc)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode SBOM statement of %s: %w", v.Ref(), err)
	}
	return s.signEnvelope(PayloadType, payload, "the SBOM of "+v.Ref().String())
}

func newSBOMStatement(v *kiln.Version, predicateType string, doc []byte) (*sbomStatement, error) {
	if v == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "no version given to sign an SBOM for")
	}
	if SBOMAttachment(predicateType) == "" {
		return nil, kiln.Errorf(kiln.EINVALID, "SBOM predicate type %q is not one kiln signs; use %s or %s", predicateType, PredicateSPDX, PredicateCycloneDX)
	}
	a := v.Provenance.Artifact
	if a == nil || a.Digest == "" {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact digest, so there is nothing to bind its SBOM to; kiln signs SBOMs of the images it holds", v.Ref())
	}
	if err := kiln.ValidateDigest("artifact.digest", a.Digest); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, doc); err != nil || !bytes.HasPrefix(compact.Bytes(), []byte("{")) {
		return nil, kiln.Errorf(kiln.EINVALID, "the SBOM of %s is not a JSON object", v.Ref())
	}
	return &sbomStatement{
		Type:          StatementType,
		Subject:       []Subject{{Name: v.Ref().String(), Digest: map[string]string{"sha256": strings.TrimPrefix(a.Digest, "sha256:")}}},
		PredicateType: predicateType,
		Predicate:     compact.Bytes(),
	}, nil
}

// VerifySBOM checks that envelope is signed by pub over an in-toto SBOM
// statement about v's artifact, and returns its predicate type and the SBOM
// document (indented JSON).
//
// Errors: EINVALID for a key that is not ed25519 or a malformed envelope;
// ECONFLICT when the signature does not verify, or the statement is about
// another version or artifact, or holds no SBOM.
func VerifySBOM(pub crypto.PublicKey, envelope []byte, v *kiln.Version) (string, []byte, error) {
	if v == nil {
		return "", nil, kiln.Errorf(kiln.EINVALID, "no version given to verify")
	}
	name := v.Ref().String()
	edpub, ok := pub.(ed25519.PublicKey)
	if !ok || len(edpub) != ed25519.PublicKeySize {
		return "", nil, kiln.Errorf(kiln.EINVALID, "cannot verify the SBOM of %s with a %T; kiln signs with ed25519 keys", name, pub)
	}
	id, err := KeyID(edpub)
	if err != nil {
		return "", nil, err
	}
	env, err := decodeEnvelope(envelope)
	if err != nil {
		return "", nil, kiln.Errorf(kiln.EINVALID, "SBOM envelope of %s: %v", name, err)
	}
	payload, err := openEnvelope(env, 1, dsseKey{pub: edpub, id: id})
	if err != nil {
		return "", nil, kiln.Errorf(kiln.ECONFLICT, "the SBOM signature of %s does not verify with key %s%s", name, id, keyHint(env, id))
	}
	if env.PayloadType != PayloadType {
		return "", nil, kiln.Errorf(kiln.ECONFLICT, "the SBOM envelope of %s holds a payload of type %q; want %s", name, env.PayloadType, PayloadType)
	}
	var st sbomStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		return "", nil, kiln.Errorf(kiln.ECONFLICT, "the signed SBOM payload of %s is not an in-toto statement: %v", name, err)
	}
	if st.Type != StatementType || SBOMAttachment(st.PredicateType) == "" {
		return "", nil, kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s is %q about %q, not an SBOM kiln writes", name, st.Type, st.PredicateType)
	}
	a := v.Provenance.Artifact
	if len(st.Subject) != 1 || st.Subject[0].Name != name || a == nil ||
		st.Subject[0].Digest["sha256"] != strings.TrimPrefix(a.Digest, "sha256:") {
		return "", nil, kiln.Errorf(kiln.ECONFLICT, "the signed SBOM is not about %s and its artifact; the envelope belongs to another version or the artifact record changed", name)
	}
	var out bytes.Buffer
	if err := json.Indent(&out, st.Predicate, "", "  "); err != nil || !bytes.HasPrefix(out.Bytes(), []byte("{")) {
		return "", nil, kiln.Errorf(kiln.ECONFLICT, "the signed SBOM of %s holds no JSON document", name)
	}
	out.WriteByte('\n')
	return st.PredicateType, out.Bytes(), nil
}

// SealSBOM signs doc (SignSBOM) and returns it as the attachment kept with
// v, named by SBOMAttachment: what a build stores with
// kiln.Registry.AddAttachment once the version is recorded.
func (s *Signer) SealSBOM(v *kiln.Version, predicateType string, doc []byte) (*kiln.Attachment, error) {
	env, err := s.SignSBOM(v, predicateType, doc)
	if err != nil {
		return nil, err
	}
	return &kiln.Attachment{Name: SBOMAttachment(predicateType), MediaType: "application/vnd.dsse.envelope.v1+json", Data: env}, nil
}

// VerifySBOMWith is VerifySBOM with any one of keys (kiln's own and those
// it rotated out): an SBOM read from elsewhere, such as the referrer of a
// version's image in an OCI registry, was signed by whichever key was
// current then.
func VerifySBOMWith(keys []crypto.PublicKey, envelope []byte, v *kiln.Version) (string, []byte, error) {
	if len(keys) == 0 {
		return "", nil, kiln.Errorf(kiln.EINVALID, "no public key to verify the SBOM of %s with", v.Ref())
	}
	var first error
	for _, k := range keys {
		pt, doc, err := VerifySBOM(k, envelope, v)
		if err == nil {
			return pt, doc, nil
		}
		if first == nil {
			first = err
		}
	}
	return "", nil, first
}

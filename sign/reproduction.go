package sign

import (
	"crypto"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/kiln-project/kiln"
)

// PredicateReproduction names the predicate of a signed rebuild check
// (ReproductionPredicate): kiln rebuilt the subject from its recorded
// provenance and says whether it came out bit for bit the same. An
// identifier, not a page that must resolve.
const PredicateReproduction = "https://kiln.dev/reproduction/v1"

// ReproductionPredicate is what a signed rebuild check attests. The
// version's provenance attestation never changes once signed; each check
// is a statement of its own beside it, about the same artifact.
type ReproductionPredicate struct {
	// Identical is set when the rebuilt artifact has the subject's digest.
	Identical bool `json:"identical"`
	// Rebuilt is the rebuilt artifact's digest ("sha256" → hex).
	Rebuilt map[string]string `json:"rebuilt"`
	// SourceDateEpoch is the epoch the version was built and rebuilt
	// with, from its provenance.
	SourceDateEpoch int64 `json:"source_date_epoch"`
	// CheckedBy is the actor who ran the check, CheckedAt when it was
	// recorded (UTC, to the microsecond, as the registry keeps it).
	CheckedBy string    `json:"checked_by"`
	CheckedAt time.Time `json:"checked_at"`
	// DifferingFiles counts the files that differ; Files are the first
	// kiln.MaxReproductionFiles of them; Summary is the report's summary.
	DifferingFiles int                  `json:"differing_files"`
	Files          []kiln.DifferingFile `json:"files,omitempty"`
	Summary        string               `json:"summary,omitempty"`
}

type reproductionStatement struct {
	Type          string                `json:"_type"`
	Subject       []Subject             `json:"subject"`
	PredicateType string                `json:"predicateType"`
	Predicate     ReproductionPredicate `json:"predicate"`
}

func newReproductionStatement(v *kiln.Version, r *kiln.Reproduction) (*reproductionStatement, error) {
	if v == nil || r == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "a signed rebuild check needs the version and the check")
	}
	if r.Version != v.Ref() {
		return nil, kiln.Errorf(kiln.EINVALID, "the check is of %s, not %s", r.Version, v.Ref())
	}
	a := v.Provenance.Artifact
	if a == nil || a.Digest == "" {
		return nil, kiln.Errorf(kiln.EINVALID, "%s has no artifact digest, so there is nothing to bind a rebuild check to", v.Ref())
	}
	if err := kiln.ValidateDigest("artifact.digest", a.Digest); err != nil {
		return nil, err
	}
	if err := kiln.ValidateDigest("digest", r.Digest); err != nil {
		return nil, err
	}
	if r.Actor == "" || r.At.IsZero() {
		return nil, kiln.Errorf(kiln.EINVALID, "the check of %s has no actor or time yet; it is signed as it is recorded (kiln.Reproduction.Seal)", v.Ref())
	}
	return &reproductionStatement{
		Type:          StatementType,
		Subject:       []Subject{{Name: v.Ref().String(), Digest: map[string]string{"sha256": strings.TrimPrefix(a.Digest, "sha256:")}}},
		PredicateType: PredicateReproduction,
		Predicate: ReproductionPredicate{
			Identical:       r.Identical,
			Rebuilt:         map[string]string{"sha256": strings.TrimPrefix(r.Digest, "sha256:")},
			SourceDateEpoch: v.Provenance.SourceDateEpoch,
			CheckedBy:       r.Actor,
			CheckedAt:       r.At.UTC().Truncate(time.Microsecond),
			DifferingFiles:  r.DifferingFiles,
			Files:           r.Files,
			Summary:         r.Summary,
		},
	}, nil
}

// SignReproduction returns a DSSE envelope holding an in-toto statement
// about v's artifact whose predicate is the rebuild check r
// (ReproductionPredicate), signed like the provenance. Deterministic.
//
// EINVALID for a check of another version, a version without an artifact
// digest, or a check not recorded yet (no actor or time).
func (s *Signer) SignReproduction(v *kiln.Version, r *kiln.Reproduction) ([]byte, error) {
	st, err := newReproductionStatement(v, r)
	if err != nil {
		return nil, err
	}
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encode the rebuild check of %s: %w", v.Ref(), err)
	}
	return s.signEnvelope(PayloadType, payload, "the rebuild check of "+v.Ref().String())
}

// SealReproduction signs r (SignReproduction) and returns it as the
// attachment kept with v under r.AttestationName(): what
// kiln.Reproduction.Seal returns, so the registry keeps it in the
// transaction that records the check.
func (s *Signer) SealReproduction(v *kiln.Version, r *kiln.Reproduction) (*kiln.Attachment, error) {
	env, err := s.SignReproduction(v, r)
	if err != nil {
		return nil, err
	}
	return &kiln.Attachment{Name: r.AttestationName(), MediaType: "application/vnd.dsse.envelope.v1+json", Data: env}, nil
}

// VerifyReproduction checks that envelope is signed by one of keys over
// an in-toto statement about v's artifact whose predicate is a rebuild
// check, and returns the check.
//
// Errors: EINVALID for no key, a key that is not ed25519 or a malformed
// envelope; ECONFLICT when the signature does not verify with any key or
// the statement is not a rebuild check of v and its artifact.
func VerifyReproduction(keys []crypto.PublicKey, envelope []byte, v *kiln.Version) (*ReproductionPredicate, error) {
	if v == nil {
		return nil, kiln.Errorf(kiln.EINVALID, "no version given to verify")
	}
	name := v.Ref().String()
	if len(keys) == 0 {
		return nil, kiln.Errorf(kiln.EINVALID, "no public key to verify the rebuild check of %s with", name)
	}
	var vs []dsse.Verifier
	var first string
	for _, pub := range keys {
		edpub, ok := pub.(ed25519.PublicKey)
		if !ok || len(edpub) != ed25519.PublicKeySize {
			return nil, kiln.Errorf(kiln.EINVALID, "cannot verify the rebuild check of %s with a %T; kiln signs with ed25519 keys", name, pub)
		}
		id, err := KeyID(edpub)
		if err != nil {
			return nil, err
		}
		if first == "" {
			first = id
		}
		vs = append(vs, dsseKey{pub: edpub, id: id})
	}
	env, err := decodeEnvelope(envelope)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "rebuild check envelope of %s: %v", name, err)
	}
	payload, err := openEnvelope(env, 1, vs...)
	if err != nil {
		return nil, kiln.Errorf(kiln.ECONFLICT, "the signature of the rebuild check of %s does not verify with kiln's keys%s", name, keyHint(env, first))
	}
	if env.PayloadType != PayloadType {
		return nil, kiln.Errorf(kiln.ECONFLICT, "the rebuild check envelope of %s holds a payload of type %q; want %s", name, env.PayloadType, PayloadType)
	}
	var st reproductionStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, kiln.Errorf(kiln.ECONFLICT, "the signed payload of %s is not a rebuild check statement: %v", name, err)
	}
	if st.Type != StatementType || st.PredicateType != PredicateReproduction {
		return nil, kiln.Errorf(kiln.ECONFLICT, "the signed statement of %s is %q about %q, not a rebuild check (%s)", name, st.Type, st.PredicateType, PredicateReproduction)
	}
	a := v.Provenance.Artifact
	if len(st.Subject) != 1 || st.Subject[0].Name != name || a == nil ||
		st.Subject[0].Digest["sha256"] != strings.TrimPrefix(a.Digest, "sha256:") {
		return nil, kiln.Errorf(kiln.ECONFLICT, "the signed rebuild check is not about %s and its artifact; the envelope belongs to another version or the artifact record changed", name)
	}
	return &st.Predicate, nil
}

package sign

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// CheckpointPayloadType is the DSSE payload type of an audit checkpoint:
// a signature over it never passes for a version's statement, nor the
// other way round.
const CheckpointPayloadType = "application/vnd.kiln.audit-checkpoint.v1+json"

// checkpointPayload is what a checkpoint signs.
type checkpointPayload struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	Time string `json:"time"`
}

// SignAuditCheckpoint signs "entry a.Seq of the audit log has hash a.Hash"
// at time now.
func (s *Signer) SignAuditCheckpoint(a kiln.AuditAnchor, now time.Time) (*kiln.AuditCheckpoint, error) {
	now = now.UTC().Truncate(time.Microsecond)
	payload, err := json.Marshal(checkpointPayload{Seq: a.Seq, Hash: a.Hash, Time: now.Format(time.RFC3339Nano)})
	if err != nil {
		return nil, err
	}
	b, err := s.signEnvelope(CheckpointPayloadType, payload, fmt.Sprintf("audit checkpoint %d", a.Seq))
	if err != nil {
		return nil, err
	}
	return &kiln.AuditCheckpoint{AuditAnchor: a, Time: now, KeyID: s.id, Envelope: b}, nil
}

// VerifyAuditCheckpoint checks cp's envelope against the trusted keys and
// that the signed anchor is the one cp carries. ECONFLICT when no key
// verifies it or the signed fields differ.
func VerifyAuditCheckpoint(cp *kiln.AuditCheckpoint, keys ...ed25519.PublicKey) error {
	env, err := decodeEnvelope(cp.Envelope)
	if err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "audit checkpoint %d: %v", cp.Seq, err)
	}
	var vs []dsse.Verifier
	for _, k := range keys {
		id, err := KeyID(k)
		if err != nil {
			return err
		}
		vs = append(vs, dsseKey{pub: k, id: id})
	}
	if len(vs) == 0 {
		return kiln.Errorf(kiln.EINVALID, "no public key to verify audit checkpoints with")
	}
	payload, err := openEnvelope(env, 1, vs...)
	if err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "audit checkpoint %d: the signature does not verify with the trusted key(s)%s", cp.Seq, keyHint(env, cp.KeyID))
	}
	if env.PayloadType != CheckpointPayloadType {
		return kiln.Errorf(kiln.ECONFLICT, "audit checkpoint %d is signed over a payload of type %q, not an audit checkpoint", cp.Seq, env.PayloadType)
	}
	var p checkpointPayload
	if err := json.Unmarshal(payload, &p); err != nil {
		return kiln.Errorf(kiln.ECONFLICT, "audit checkpoint %d: the signed payload is not a checkpoint: %v", cp.Seq, err)
	}
	if p.Seq != cp.Seq || p.Hash != cp.Hash {
		return kiln.Errorf(kiln.ECONFLICT, "audit checkpoint %d: the row says entry %d has hash %.12s…, but the signature covers entry %d with hash %.12s…: the row was changed",
			cp.Seq, cp.Seq, cp.Hash, p.Seq, p.Hash)
	}
	return nil
}

// VerifyAuditLog checks the audit log's chain, its signed checkpoints (a
// checkpoint that does not verify is a problem; one that verifies becomes
// an anchor) and the anchors the user kept (expect). staleAfter, when not
// zero, reports a newest checkpoint older than that while later entries
// exist, which is what deleting the newest checkpoints looks like (a warning:
// it is also what a database with no kiln serve running looks like).
func VerifyAuditLog(ctx context.Context, cps kiln.AuditCheckpoints, expect []kiln.AuditAnchor, staleAfter time.Duration, now time.Time, keys ...ed25519.PublicKey) (*kiln.AuditReport, error) {
	list, err := cps.ListAuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	var problems []string
	anchors := append([]kiln.AuditAnchor(nil), expect...)
	var verified []*kiln.AuditCheckpoint
	for _, cp := range list {
		if err := VerifyAuditCheckpoint(cp, keys...); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		verified = append(verified, cp)
		anchors = append(anchors, cp.AuditAnchor)
	}
	c, err := cps.VerifyAuditAgainst(ctx, anchors)
	if err != nil {
		return nil, err
	}
	r := &kiln.AuditReport{AuditCheck: *c, Checkpoints: len(verified), Anchors: len(expect)}
	r.Problems = append(r.Problems, problems...)
	if n := len(verified); n > 0 {
		r.LastCheckpoint = verified[n-1]
	}
	if staleAfter > 0 && r.Entries > 0 {
		last := r.LastCheckpoint
		switch {
		case last == nil && len(list) == 0:
			// Never checkpointed (no kiln serve ran): nothing to compare.
		case last != nil && last.Seq < r.Entries && now.Sub(last.Time) > staleAfter:
			r.Warnings = append(r.Warnings, fmt.Sprintf("the newest signed checkpoint covers entry %d of %d and is from %s, older than %s; kiln serve signs one every interval, so either no server ran since or newer checkpoints were deleted",
				last.Seq, r.Entries, last.Time.Format(time.RFC3339), staleAfter))
		}
	}
	return r, nil
}

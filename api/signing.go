package api

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

type signingKeyOut struct {
	Body struct {
		KeyID        string `json:"key_id" doc:"lowercase hex SHA-256 of the DER public key; compute it yourself from public_key_pem rather than trusting it"`
		PublicKeyPEM string `json:"public_key_pem" doc:"PEM \"PUBLIC KEY\" block (PKIX), as kiln key export prints"`
	}
}

// provenanceOut is the envelope as stored, not re-encoded: its bytes are
// what consumers verify (docs/signing.md).
type provenanceOut struct {
	ContentType string `header:"Content-Type"`
	Body        []byte
}

// registerSigning adds the read side of provenance signing: the server's
// public key and a version's DSSE envelope. Neither proves anything by
// itself, since both come from the server: a consumer who does not trust
// the server checks the envelope with a key obtained out of band.
func (s *Server) registerSigning() {
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-signing-key", Method: http.MethodGet, Path: "/api/v1/signing-key",
		Summary: "The public key that verifies this server's signed provenance", Tags: []string{"signing"},
		Description: "An answer from the server you are checking: for a verification that does not trust the server, get the key out of band (kiln key export on the server's machine).",
	}, func(_ context.Context, _ *struct{}) (*signingKeyOut, error) {
		if s.cfg.SigningKey == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln server has no provenance signing key configured, so it cannot publish one; run `kiln key export` on the server's machine without --server")
		}
		id, err := sign.KeyID(s.cfg.SigningKey)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKIXPublicKey(s.cfg.SigningKey)
		if err != nil {
			return nil, kiln.Errorf(kiln.EINTERNAL, "encode the signing key: %v", err)
		}
		out := &signingKeyOut{}
		out.Body.KeyID = id
		out.Body.PublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
		return out, nil
	})

	reg := s.cfg.Registry
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-provenance", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/provenance",
		Summary: "A version's signed provenance: the DSSE envelope as stored", Tags: []string{"versions", "signing"},
		Description: "The bytes of the " + sign.EnvelopeAttachment + " attachment, as JSON. Verify them with kiln version verify --key, or with the openssl recipe in docs/signing.md.",
	}, func(ctx context.Context, in *versionPath) (*provenanceOut, error) {
		v, err := reg.FindVersion(ctx, in.ref())
		if err != nil {
			return nil, err
		}
		a, err := reg.Attachment(ctx, v.Ref(), sign.EnvelopeAttachment)
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			why := "it was not recorded by a kiln that signs, or its signature was removed"
			if v.Provenance.Artifact == nil {
				why = "it has no artifact, and kiln signs only versions with one"
			}
			return nil, kiln.Errorf(kiln.ENOTFOUND, "%s has no signed provenance: %s", v.Name, why)
		}
		if err != nil {
			return nil, err
		}
		ct := a.MediaType
		if ct == "" {
			ct = "application/json"
		}
		return &provenanceOut{ContentType: ct, Body: a.Data}, nil
	})
}

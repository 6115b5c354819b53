package client

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
)

// SigningKeyPEM returns the server's provenance signing key as a PEM
// "PUBLIC KEY" block, re-encoded from the key it parsed, so it is byte for
// byte what `kiln key export` prints on the server. The key id the server
// reports is checked against the key; a server whose two disagree is
// refused. This is the server's word: a verifier that does not trust the
// server uses a key obtained out of band instead.
//
// EUNAVAILABLE when the server has no signing key; EINVALID when what it
// sends is not an ed25519 public key.
func (c *Client) SigningKeyPEM(ctx context.Context) ([]byte, error) {
	var out struct {
		KeyID        string `json:"key_id"`
		PublicKeyPEM string `json:"public_key_pem"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/signing-key", nil, nil, &out); err != nil {
		return nil, err
	}
	pub, err := sign.ParsePublicKeyPEM([]byte(out.PublicKeyPEM))
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "the signing key kiln server %s sent: %s", c.base.Redacted(), kiln.ErrorMessage(err))
	}
	id, err := sign.KeyID(pub)
	if err != nil {
		return nil, err
	}
	if id != out.KeyID {
		return nil, kiln.Errorf(kiln.EINVALID, "kiln server %s sent a signing key whose id is %s but said %q; do not trust its answers until this is explained", c.base.Redacted(), id, out.KeyID)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode the server's signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Provenance returns the DSSE envelope kept with a version, the bytes as
// the server stored them (GET …/versions/{n}/provenance). ENOTFOUND for
// an unknown version or one without signed provenance.
func (c *Client) Provenance(ctx context.Context, ref kiln.VersionRef) ([]byte, error) {
	var env json.RawMessage
	if err := c.do(ctx, http.MethodGet, versionPath(ref)+"/provenance", nil, nil, &env); err != nil {
		return nil, err
	}
	return env, nil
}

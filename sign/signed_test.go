package sign

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// layeredVersion is testVersion with a layered artifact whose digest is
// its layer list's, as a build records it.
func layeredVersion(t *testing.T) *kiln.Version {
	t.Helper()
	v := testVersion()
	layers := []kiln.Layer{
		{Digest: "sha256:" + strings.Repeat("1a", 32), DiffID: "sha256:" + strings.Repeat("1b", 32), Size: 1000, MediaType: kiln.LayerMediaTypeGzip},
		{Digest: "sha256:" + strings.Repeat("2a", 32), DiffID: "sha256:" + strings.Repeat("2b", 32), Size: 20, MediaType: kiln.LayerMediaTypeZstd},
	}
	list, err := kiln.EncodeLayerList(layers)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(list)
	d := "sha256:" + hex.EncodeToString(h[:])
	v.Provenance.Artifact = &kiln.Artifact{Ref: "local:" + d, Digest: d, Size: 1020, Layers: layers}
	return v
}

// An envelope read without the version's record (from a registry) gives
// back the version it signs, with the key that signed it; a wrong key, a
// layer list that does not hash to the signed digest and garbage fail.
func TestVerifySigned(t *testing.T) {
	s, other := newTestSigner(t), newTestSigner(t)
	for name, v := range map[string]*kiln.Version{"single tar": testVersion(), "layered": layeredVersion(t)} {
		t.Run(name, func(t *testing.T) {
			env, err := s.SignVersion(v)
			if err != nil {
				t.Fatal(err)
			}
			got, id, err := VerifySigned([]crypto.PublicKey{other.Public(), s.Public()}, env, "the referrer")
			if err != nil {
				t.Fatal(err)
			}
			if id != s.KeyID() {
				t.Errorf("key id %s, want the signer's %s", id, s.KeyID())
			}
			want := asStored(v).Provenance
			if got.Name != "appserver-3" || got.Image != "appserver" || got.Number != 3 || got.SemVer != "1.0.4" || !reflect.DeepEqual(got.Provenance, want) {
				t.Errorf("VerifySigned gave %+v; want appserver-3 with the signed provenance", got)
			}
			_, _, err = VerifySigned([]crypto.PublicKey{other.Public()}, env, "the referrer")
			if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "the signature of the referrer does not verify with key "+other.KeyID()) {
				t.Errorf("wrong key: %v", err)
			}
		})
	}

	// A statement whose layers do not make the signed digest: signed, but
	// not by kiln's rules.
	v := layeredVersion(t)
	v.Provenance.Artifact.Layers[1].Size = 21
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = VerifySigned([]crypto.PublicKey{s.Public()}, env, "the referrer")
	if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "the layer list of its signed layers hashes to") {
		t.Errorf("layers that do not make the signed digest: %v", err)
	}

	for _, bad := range []string{"", "{}", `{"payload":"x","payloadType":"y","signatures":[]}`} {
		if _, _, err := VerifySigned([]crypto.PublicKey{s.Public()}, []byte(bad), "the referrer"); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "the referrer is not a signature envelope") {
			t.Errorf("envelope %q: %v", bad, err)
		}
	}
	if _, _, err := VerifySigned(nil, []byte("{}"), "the referrer"); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("no keys: %v", err)
	}
}

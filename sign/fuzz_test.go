package sign

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// FuzzVerifyVersion feeds arbitrary envelopes to VerifyVersion: it must
// never panic, must answer with a kiln error code, and must accept nothing
// but an envelope whose payload is the genuine statement.
func FuzzVerifyVersion(f *testing.F) {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	s := NewSigner(ed25519.NewKeyFromSeed(seed))
	v := testVersion()
	env, err := s.SignVersion(v)
	if err != nil {
		f.Fatal(err)
	}
	st, _ := NewStatement(v)
	genuine, _ := st.Marshal()
	f.Add(env)
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"","signatures":[{"keyid":"","sig":""}]}`))
	f.Add([]byte(`{"payload":"-_-_Pj8=","payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==","keyid":"A"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, envelope []byte) {
		err := VerifyVersion(s.Public(), envelope, v)
		if err != nil {
			if code := kiln.ErrorCode(err); code != kiln.EINVALID && code != kiln.ECONFLICT {
				t.Fatalf("code %s for %q: %v", code, envelope, err)
			}
			return
		}
		var e dsse.Envelope
		if err := json.Unmarshal(envelope, &e); err != nil {
			t.Fatalf("accepted an envelope that is not JSON: %q", envelope)
		}
		p, err := decodeBase64(e.Payload)
		if err != nil || !bytes.Equal(p, genuine) {
			t.Fatalf("accepted a payload other than the signed statement: %q", p)
		}
	})
}

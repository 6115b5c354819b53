package sign

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"os"
	"slices"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// dsseVectors is the layout of testdata/dsse-vectors.json, a copy of the
// test vectors published with the DSSE protocol:
// https://github.com/secure-systems-lab/dsse/blob/82043adf78bb4e67c208f9ffa72b38804ea6a0c4/testvectors/vectors.json
// (see testvectors/README.md there). Keys "A" and "B" are the ed25519 keys
// of RFC 8032 section 7.1, TEST 1 and TEST 2.
type dsseVectors struct {
	Keys map[string]struct {
		Algorithm string `json:"algorithm"`
		Seed      string `json:"seed"`
		Public    string `json:"public"`
	} `json:"keys"`
	Vectors []struct {
		ID                    string          `json:"id"`
		Envelope              json.RawMessage `json:"envelope"`
		TrustedKeys           []string        `json:"trustedKeys"`
		Threshold             int             `json:"threshold"`
		SupportedPayloadTypes []string        `json:"supportedPayloadTypes"`
		PAE                   string          `json:"pae"`
		Expect                string          `json:"expect"`
	} `json:"vectors"`
}

// TestDSSEVectors runs the DSSE spec's vectors through the same steps
// VerifyVersion takes: decodeEnvelope, openEnvelope, then the payload type
// check. It also checks the PAE bytes the signatures cover.
func TestDSSEVectors(t *testing.T) {
	data, err := os.ReadFile("testdata/dsse-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var tv dsseVectors
	if err := json.Unmarshal(data, &tv); err != nil {
		t.Fatal(err)
	}
	if len(tv.Vectors) < 9 {
		t.Fatalf("only %d vectors in the file", len(tv.Vectors))
	}
	keys := map[string]dsseKey{}
	for name, k := range tv.Keys {
		seed, _ := hex.DecodeString(k.Seed)
		priv := ed25519.NewKeyFromSeed(seed)
		pub := priv.Public().(ed25519.PublicKey)
		if hex.EncodeToString(pub) != k.Public {
			t.Fatalf("key %s: seed gives public key %x, want %s", name, pub, k.Public)
		}
		keys[name] = dsseKey{priv: priv, pub: pub, id: name}
	}
	for _, v := range tv.Vectors {
		t.Run(v.ID, func(t *testing.T) {
			env, err := decodeEnvelope(v.Envelope)
			if err != nil {
				t.Fatalf("decodeEnvelope: %v", err)
			}
			payload, err := decodeBase64(env.Payload)
			if err != nil {
				t.Fatal(err)
			}
			// pae is what the signatures cover; for an envelope that is
			// accepted, that is the PAE of its own type and payload.
			pae, _ := hex.DecodeString(v.PAE)
			if sig, err := decodeBase64(env.Signatures[0].Sig); err != nil || !ed25519.Verify(keys["A"].pub, pae, sig) {
				t.Fatalf("the first signature does not cover the vector's pae; the vector or the test is wrong")
			}
			if got := hex.EncodeToString(dsse.PAE(env.PayloadType, payload)); (got == v.PAE) != (v.ID != "payload-type-swapped") {
				t.Errorf("PAE = %s\nvector %s", got, v.PAE)
			}
			var verifiers []dsse.Verifier
			for _, name := range v.TrustedKeys {
				verifiers = append(verifiers, keys[name])
			}
			got, err := openEnvelope(env, v.Threshold, verifiers...)
			accept := err == nil && slices.Contains(v.SupportedPayloadTypes, env.PayloadType)
			if want := v.Expect == "accept"; accept != want {
				t.Fatalf("accepted = %v (err %v); the vector expects %s", accept, err, v.Expect)
			}
			if accept && string(got) != string(payload) {
				t.Errorf("payload = %q; want %q", got, payload)
			}
		})
	}
}

// TestDSSEVectorsSignDeterministic re-signs the accepted single-key
// vectors with our signer adapter: ed25519 is deterministic, so the
// signatures must come out byte for byte as published.
func TestDSSEVectorsSignDeterministic(t *testing.T) {
	seed, _ := hex.DecodeString("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60") // key A
	priv := ed25519.NewKeyFromSeed(seed)
	k := dsseKey{priv: priv, pub: priv.Public().(ed25519.PublicKey), id: "A"}
	es, err := dsse.NewEnvelopeSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	env, err := es.SignPayload(t.Context(), PayloadType, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	if err != nil {
		t.Fatal(err)
	}
	const want = "2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==" // vector single-signature
	if env.Signatures[0].Sig != want || env.Signatures[0].KeyID != "A" {
		t.Errorf("signature = %+v; want sig %s keyid A", env.Signatures[0], want)
	}
	if env.Payload != "eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==" {
		t.Errorf("payload = %s", env.Payload)
	}
}

// TestDSSEProtocolExample checks PAE against the worked example in the
// DSSE protocol document (protocol.md, "Test Vectors"): its ECDSA P-256
// signature must verify over our PAE bytes.
// https://github.com/secure-systems-lab/dsse/blob/master/protocol.md#test-vectors
func TestDSSEProtocolExample(t *testing.T) {
	pae := dsse.PAE("http://example.com/HelloWorld", []byte("hello world"))
	if string(pae) != "DSSEv1 29 http://example.com/HelloWorld 11 hello world" {
		t.Fatalf("PAE = %q", pae)
	}
	x, _ := new(big.Int).SetString("46950820868899156662930047687818585632848591499744589407958293238635476079160", 10)
	y, _ := new(big.Int).SetString("5640078356564379163099075877009565129882514886557779369047442380624545832820", 10)
	point := append([]byte{4}, x.FillBytes(make([]byte, 32))...)
	point = append(point, y.FillBytes(make([]byte, 32))...)
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point)
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	sig, err = base64.StdEncoding.DecodeString("A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA==")
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %v, %d bytes", err, len(sig))
	}
	r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	h := sha256.Sum256(pae)
	if !ecdsa.Verify(pub, h[:], r, s) {
		t.Fatal("the protocol document's signature does not verify over our PAE")
	}
	h = sha256.Sum256(dsse.PAE("http://example.com/HelloWorld", []byte("hello world!")))
	if ecdsa.Verify(pub, h[:], r, s) {
		t.Fatal("signature verifies over another body; the check cannot fail")
	}
}

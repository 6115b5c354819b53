package sign

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/kiln-project/kiln"
)

const testSBOM = `{
  "spdxVersion": "SPDX-2.3",
  "SPDXID": "SPDXRef-DOCUMENT",
  "packages": [{"name": "libssl3", "versionInfo": "3.0.11-1~deb12u2"}]
}`

func TestSignSBOMRoundTrip(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	env, err := s.SignSBOM(v, PredicateSPDX, []byte(testSBOM))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := s.SignSBOM(v, PredicateSPDX, []byte(testSBOM))
	if !bytes.Equal(env, again) {
		t.Error("signing the same SBOM twice gives different envelopes")
	}
	pt, doc, err := VerifySBOM(s.Public(), env, asStored(v))
	if err != nil {
		t.Fatal(err)
	}
	if pt != PredicateSPDX || !strings.Contains(string(doc), `"name": "libssl3"`) {
		t.Errorf("got %s %s", pt, doc)
	}
	var e dsse.Envelope
	_ = json.Unmarshal(env, &e)
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	if !strings.Contains(string(payload), `"predicateType":"https://spdx.dev/Document/v2.3"`) ||
		!strings.Contains(string(payload), `"_type":"https://in-toto.io/Statement/v1"`) {
		t.Errorf("payload is not an in-toto SPDX statement: %s", payload)
	}
}

func TestVerifySBOMRejects(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	env, err := s.SignSBOM(v, PredicateCycloneDX, []byte(`{"bomFormat":"CycloneDX"}`))
	if err != nil {
		t.Fatal(err)
	}
	other := testVersion()
	other.Number = 4
	moved := testVersion()
	moved.Provenance.Artifact = &kiln.Artifact{Ref: "x", Digest: "sha256:" + strings.Repeat("9", 64)}
	changed := tamper(t, env, func(e *dsse.Envelope) {
		e.Payload = base64.StdEncoding.EncodeToString([]byte(`{"_type":"https://in-toto.io/Statement/v1"}`))
	})
	for name, tc := range map[string]struct {
		env  []byte
		v    *kiln.Version
		want string
	}{
		"other version":   {env, other, "not about appserver-4"},
		"other artifact":  {env, moved, "not about appserver-3"},
		"changed payload": {changed, v, "does not verify"},
		"empty":           {nil, v, "empty"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := VerifySBOM(s.Public(), tc.env, tc.v)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestSignSBOMNeedsDigestAndKnownType(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	if _, err := s.SignSBOM(v, "https://example.com/other", []byte(`{}`)); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("unknown predicate type: %v", err)
	}
	if _, err := s.SignSBOM(v, PredicateSPDX, []byte(`[1]`)); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("not an object: %v", err)
	}
	v.Provenance.Method = kiln.MethodExternal
	v.Provenance.Artifact = &kiln.Artifact{Ref: "packer:amazon-ebs:eu-west-1:ami-fa43559c"}
	if _, err := s.SignSBOM(v, PredicateSPDX, []byte(testSBOM)); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "no artifact digest") {
		t.Errorf("external artifact: %v", err)
	}
	if a, err := s.Seal(v); a != nil || err != nil {
		t.Errorf("Seal of an external version = %v, %v; want nothing", a, err)
	}
}

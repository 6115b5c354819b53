package sign

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/kiln-project/kiln"
)

func testReproduction(v *kiln.Version) *kiln.Reproduction {
	return &kiln.Reproduction{Version: v.Ref(), Identical: false, Digest: "sha256:" + strings.Repeat("e1", 32),
		Summary: "1 files differ", DifferingFiles: 1, Files: []kiln.DifferingFile{{Path: "etc/stamp", What: []string{"content"}, Step: "shell (stamp.kiln.hcl:5)"}},
		Actor: "token:ops", At: time.Date(2026, 12, 7, 12, 45, 0, 123456000, time.UTC)}
}

// A rebuild check signs as an in-toto statement about the version's
// artifact with kiln's reproduction predicate, deterministically, under
// the check's attachment name, and verifies back to the same check.
func TestSignReproductionRoundTrip(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	v.Provenance.SourceDateEpoch = 1765065600
	r := testReproduction(v)
	att, err := s.SealReproduction(v, r)
	if err != nil {
		t.Fatal(err)
	}
	if att.Name != "reproduction.20261207T124500.123456Z.dsse.json" || att.MediaType != "application/vnd.dsse.envelope.v1+json" {
		t.Errorf("attachment %s (%s)", att.Name, att.MediaType)
	}
	if again, _ := s.SignReproduction(v, r); !bytes.Equal(att.Data, again) {
		t.Error("signing the same check twice gives different envelopes")
	}
	p, err := VerifyReproduction([]crypto.PublicKey{newTestSigner(t).Public(), s.Public()}, att.Data, asStored(v))
	if err != nil {
		t.Fatal(err)
	}
	if p.Identical || p.Rebuilt["sha256"] != strings.Repeat("e1", 32) || p.CheckedBy != "token:ops" || !p.CheckedAt.Equal(r.At) ||
		p.SourceDateEpoch != 1765065600 || p.DifferingFiles != 1 || len(p.Files) != 1 || p.Files[0].Step != "shell (stamp.kiln.hcl:5)" || p.Summary != "1 files differ" {
		t.Errorf("verified check %+v; want the signed one", p)
	}
	var e dsse.Envelope
	_ = json.Unmarshal(att.Data, &e)
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	for _, want := range []string{`"_type":"https://in-toto.io/Statement/v1"`, `"predicateType":"https://kiln.dev/reproduction/v1"`,
		`"subject":[{"name":"appserver-3","digest":{"sha256":"` + strings.Repeat("0f", 32) + `"}}]`} {
		if !strings.Contains(string(payload), want) {
			t.Errorf("payload lacks %s: %s", want, payload)
		}
	}
}

func TestVerifyReproductionRejects(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	env, err := s.SignReproduction(v, testReproduction(v))
	if err != nil {
		t.Fatal(err)
	}
	other := testVersion()
	other.Number, other.Name = 4, "appserver-4"
	moved := testVersion()
	moved.Provenance.Artifact = &kiln.Artifact{Ref: "x", Digest: "sha256:" + strings.Repeat("9", 64)}
	sbom, err := s.SignSBOM(v, PredicateSPDX, []byte(testSBOM))
	if err != nil {
		t.Fatal(err)
	}
	forged := tamper(t, env, func(e *dsse.Envelope) {
		p, _ := base64.StdEncoding.DecodeString(e.Payload)
		e.Payload = base64.StdEncoding.EncodeToString(bytes.Replace(p, []byte(`"identical":false`), []byte(`"identical":true`), 1))
	})
	keys := []crypto.PublicKey{s.Public()}
	for _, c := range []struct {
		name string
		keys []crypto.PublicKey
		env  []byte
		v    *kiln.Version
		code string
		says string
	}{
		{"another key", []crypto.PublicKey{newTestSigner(t).Public()}, env, v, kiln.ECONFLICT, "does not verify"},
		{"another version", keys, env, other, kiln.ECONFLICT, "not about appserver-4"},
		{"another artifact", keys, env, moved, kiln.ECONFLICT, "not about appserver-3 and its artifact"},
		{"an SBOM envelope", keys, sbom, v, kiln.ECONFLICT, "not a rebuild check"},
		{"identical forged after signing", keys, forged, v, kiln.ECONFLICT, "does not verify"},
		{"not an envelope", keys, []byte(`{}`), v, kiln.EINVALID, "envelope"},
		{"no key", nil, env, v, kiln.EINVALID, "no public key"},
	} {
		_, err := VerifyReproduction(c.keys, c.env, c.v)
		if kiln.ErrorCode(err) != c.code || !strings.Contains(kiln.ErrorMessage(err), c.says) {
			t.Errorf("%s: %v; want %s saying %q", c.name, err, c.code, c.says)
		}
	}

	for _, c := range []struct {
		name string
		v    *kiln.Version
		r    func(*kiln.Reproduction)
		says string
	}{
		{"a check of another version", v, func(r *kiln.Reproduction) { r.Version.Number = 9 }, "not appserver-3"},
		{"not recorded yet", v, func(r *kiln.Reproduction) { r.At = time.Time{} }, "signed as it is recorded"},
		{"a bad rebuilt digest", v, func(r *kiln.Reproduction) { r.Digest = "nope" }, "digest"},
		{"an external version", func() *kiln.Version {
			x := testVersion()
			x.Provenance.Artifact = &kiln.Artifact{Ref: "packer:amazon-ebs:us-east-1:ami-0abc"}
			return x
		}(), func(*kiln.Reproduction) {}, "no artifact digest"},
	} {
		r := testReproduction(v)
		c.r(r)
		if _, err := s.SignReproduction(c.v, r); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(kiln.ErrorMessage(err), c.says) {
			t.Errorf("sign %s: %v; want EINVALID saying %q", c.name, err, c.says)
		}
	}
}

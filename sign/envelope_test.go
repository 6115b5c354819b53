package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
)

// testVersion returns a version as the registry records it.
func testVersion() *kiln.Version {
	started := time.Date(2026, 3, 1, 4, 20, 0, 123456789, time.FixedZone("CET", 3600))
	return &kiln.Version{
		ID: 7, Image: "appserver", Number: 3, Name: "appserver-3", SemVer: "1.0.4",
		Status: kiln.StatusCandidate,
		Tags:   kiln.Tags{"Name": "appserver", "team": "web"},
		Provenance: kiln.Provenance{
			Method: kiln.MethodReheat,
			Parent: &kiln.VersionRef{Image: "appserver", Number: 2},
			Base:   &kiln.VersionRef{Image: "debian-base", Number: 5},
			Sources: []kiln.Source{
				{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"},
				{Kind: kiln.SourceDefinition, Ref: "images/appserver.kiln.hcl", Digest: "sha256:" + strings.Repeat("ab", 32)},
			},
			Packages: []kiln.Package{
				{Name: "openssl", Version: "3.0.19-1~deb12u1", Architecture: "amd64"},
				{Name: "bash", Version: "5.2.15-2+b7", Architecture: "amd64"},
				{Name: "libc6", Version: "2.36-9+deb12u10", Architecture: "amd64"},
			},
			Artifact: &kiln.Artifact{
				Ref:    "local:sha256:" + strings.Repeat("0f", 32),
				Digest: "sha256:" + strings.Repeat("0f", 32),
				Size:   123456789,
			},
			BuiltBy:    "kiln-worker@build1",
			StartedAt:  started,
			FinishedAt: started.Add(7 * time.Minute),
		},
		CreatedAt: started.Add(8 * time.Minute),
	}
}

// asStored returns v as a later read from the registry gives it back:
// times in UTC to the microsecond, packages sorted, status and tags moved on.
func asStored(v *kiln.Version) *kiln.Version {
	c := *v
	c.Status = kiln.StatusReady
	c.Tags = kiln.Tags{"Name": "appserver", "Release_Status": "ready"}
	p := normalize(v.Provenance)
	c.Provenance = p
	return &c
}

func newTestSigner(t *testing.T) *Signer {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewSigner(key)
}

func TestSignVersionRoundTrip(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyVersion(s.Public(), env, v); err != nil {
		t.Fatalf("verify the version just signed: %v", err)
	}
	// Read back from the registry (normalized times, sorted packages, a
	// new status and tags), it still verifies: status and tags are not
	// provenance.
	if err := VerifyVersion(s.Public(), env, asStored(v)); err != nil {
		t.Fatalf("verify the version as stored: %v", err)
	}
	// Through the exported PEM, as a consumer would.
	pub, err := ParsePublicKeyPEM(s.PublicKeyPEM())
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyVersion(pub, env, v); err != nil {
		t.Fatalf("verify with the exported key: %v", err)
	}

	// Signing is deterministic, and the stored form signs to the same bytes.
	again, err := s.SignVersion(asStored(v))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env, again) {
		t.Errorf("signing the same version twice gave different envelopes:\n%s\n%s", env, again)
	}

	// The envelope is the DSSE JSON envelope with an in-toto statement.
	var e struct {
		PayloadType string `json:"payloadType"`
		Payload     string `json:"payload"`
		Signatures  []struct {
			KeyID string `json:"keyid"`
			Sig   string `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	if e.PayloadType != "application/vnd.in-toto+json" || len(e.Signatures) != 1 || e.Signatures[0].KeyID != s.KeyID() {
		t.Errorf("envelope = %+v", e)
	}
	payload, _ := base64.StdEncoding.DecodeString(e.Payload)
	var st map[string]any
	if err := json.Unmarshal(payload, &st); err != nil {
		t.Fatal(err)
	}
	subj := st["subject"].([]any)[0].(map[string]any)
	if st["_type"] != "https://in-toto.io/Statement/v1" || st["predicateType"] != PredicateType ||
		subj["name"] != "appserver-3" || subj["digest"].(map[string]any)["sha256"] != strings.Repeat("0f", 32) {
		t.Errorf("statement = %s", payload)
	}
	pred := st["predicate"].(map[string]any)
	if pred["image"] != "appserver" || pred["number"] != 3.0 || pred["semver"] != "1.0.4" {
		t.Errorf("predicate = %v", pred)
	}
	if got := pred["provenance"].(map[string]any)["started_at"]; got != "2026-03-01T03:20:00.123456Z" {
		t.Errorf("started_at = %v; want UTC to the microsecond", got)
	}
}

// TestStatementGolden pins the statement's JSON: a change here changes
// what every consumer parses and breaks every stored signature.
func TestStatementGolden(t *testing.T) {
	st, err := NewStatement(testVersion())
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"appserver-3","digest":{"sha256":"0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f"}}],` +
		`"predicateType":"https://kiln.dev/provenance/v1","predicate":{"image":"appserver","number":3,"semver":"1.0.4",` +
		`"provenance":{"method":"reheat","parent":{"image":"appserver","number":2},"base":{"image":"debian-base","number":5},` +
		`"sources":[{"kind":"origin","ref":"bookworm@http://deb.debian.org/debian"},{"kind":"builder-definition","ref":"images/appserver.kiln.hcl","digest":"sha256:abababababababababababababababababababababababababababababababab"}],` +
		`"packages":[{"name":"bash","version":"5.2.15-2+b7","architecture":"amd64"},{"name":"libc6","version":"2.36-9+deb12u10","architecture":"amd64"},{"name":"openssl","version":"3.0.19-1~deb12u1","architecture":"amd64"}],` +
		`"artifact":{"ref":"local:sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f","digest":"sha256:0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f","size":123456789},` +
		`"built_by":"kiln-worker@build1","started_at":"2026-03-01T03:20:00.123456Z","finished_at":"2026-03-01T03:27:00.123456Z"}}}`
	if string(got) != want {
		t.Errorf("statement JSON changed:\n got %s\nwant %s", got, want)
	}
}

// tamper re-encodes env after f changes it.
func tamper(t *testing.T, env []byte, f func(e *dsse.Envelope)) []byte {
	t.Helper()
	var e dsse.Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	f(&e)
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyVersionRejects(t *testing.T) {
	s := newTestSigner(t)
	other := newTestSigner(t)
	v := testVersion()
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(v *kiln.Version)) *kiln.Version {
		c := asStored(v)
		a := *c.Provenance.Artifact
		c.Provenance.Artifact = &a
		c.Provenance.Packages = append([]kiln.Package{}, c.Provenance.Packages...)
		f(c)
		return c
	}
	// resign signs a changed statement with s, so only the content check
	// can catch it.
	resign := func(f func(st *Statement)) []byte {
		st, err := NewStatement(v)
		if err != nil {
			t.Fatal(err)
		}
		f(st)
		payload, err := st.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		es, _ := dsse.NewEnvelopeSigner(dsseKey{priv: s.key, pub: s.pub, id: s.id})
		e, err := es.SignPayload(t.Context(), PayloadType, payload)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(e)
		return b
	}

	for _, tc := range []struct {
		name     string
		pub      ed25519.PublicKey
		envelope []byte
		version  *kiln.Version
		code     string
		want     []string // substrings of the message
	}{
		{
			name: "tampered payload",
			envelope: tamper(t, env, func(e *dsse.Envelope) {
				p, _ := base64.StdEncoding.DecodeString(e.Payload)
				p = bytes.Replace(p, []byte("kiln-worker@build1"), []byte("kiln-worker@evil01"), 1)
				e.Payload = base64.StdEncoding.EncodeToString(p)
			}),
			code: kiln.ECONFLICT,
			want: []string{"signature of appserver-3 does not verify with key " + s.KeyID(), "changed after signing"},
		},
		{
			name: "tampered signature",
			envelope: tamper(t, env, func(e *dsse.Envelope) {
				sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
				sig[10] ^= 1
				e.Signatures[0].Sig = base64.StdEncoding.EncodeToString(sig)
			}),
			code: kiln.ECONFLICT,
			want: []string{"does not verify with key " + s.KeyID()},
		},
		{
			name: "payload type changed",
			envelope: tamper(t, env, func(e *dsse.Envelope) {
				e.PayloadType = "application/json"
			}),
			code: kiln.ECONFLICT,
			want: []string{"does not verify"},
		},
		{
			name: "wrong key",
			pub:  other.Public(),
			code: kiln.ECONFLICT,
			want: []string{"does not verify with key " + other.KeyID(), "signed by key " + s.KeyID()},
		},
		{
			name: "artifact digest edited in the registry",
			version: edit(func(v *kiln.Version) {
				v.Provenance.Artifact.Digest = "sha256:" + strings.Repeat("ee", 32)
			}),
			code: kiln.ECONFLICT,
			want: []string{"artifact digest in the signed statement sha256:" + strings.Repeat("0f", 32) + " differs from the registry's sha256:" + strings.Repeat("ee", 32)},
		},
		{
			name: "provenance edited in the registry",
			version: edit(func(v *kiln.Version) {
				v.Provenance.BuiltBy = "mallory"
				v.Provenance.Packages[1].Version = "2.36-9+deb12u99"
			}),
			code: kiln.ECONFLICT,
			want: []string{"provenance of appserver-3 in the registry differs from the signed statement",
				`provenance.built_by: signed "kiln-worker@build1", registry "mallory"`,
				`provenance.packages[1].version: signed "2.36-9+deb12u10", registry "2.36-9+deb12u99"`},
		},
		{
			name: "package added in the registry",
			version: edit(func(v *kiln.Version) {
				v.Provenance.Packages = append(v.Provenance.Packages, kiln.Package{Name: "zsh", Version: "5.9", Architecture: "amd64"})
			}),
			code: kiln.ECONFLICT,
			want: []string{"provenance.packages: 3 entries signed, 4 in the registry"},
		},
		{
			name:    "base removed in the registry",
			version: edit(func(v *kiln.Version) { v.Provenance.Base = nil }),
			code:    kiln.ECONFLICT,
			want:    []string{`provenance.base: signed {"image":"debian-base","number":5}, absent from the registry`},
		},
		{
			name:    "semver edited",
			version: edit(func(v *kiln.Version) { v.SemVer = "2.0.0" }),
			code:    kiln.ECONFLICT,
			want:    []string{`semver: signed "1.0.4", registry "2.0.0"`},
		},
		{
			name:    "envelope of another version",
			version: edit(func(v *kiln.Version) { v.Number = 4; v.Name = "appserver-4" }),
			code:    kiln.ECONFLICT,
			want:    []string{"the signed statement is about appserver-3, not appserver-4"},
		},
		{
			name:     "signed statement with a second subject",
			envelope: resign(func(st *Statement) { st.Subject = append(st.Subject, st.Subject[0]) }),
			code:     kiln.ECONFLICT,
			want:     []string{"has 2 subjects"},
		},
		{
			name:     "signed statement with another predicate type",
			envelope: resign(func(st *Statement) { st.PredicateType = "https://slsa.dev/provenance/v1" }),
			code:     kiln.ECONFLICT,
			want:     []string{`predicateType "https://slsa.dev/provenance/v1"`},
		},
		{
			name:     "signed statement with a sha512 digest only",
			envelope: resign(func(st *Statement) { st.Subject[0].Digest = map[string]string{"sha512": "00"} }),
			code:     kiln.ECONFLICT,
			want:     []string{"no sha256 digest"},
		},
		{
			name:     "empty envelope",
			envelope: []byte{},
			code:     kiln.EINVALID,
			want:     []string{"the version was not signed"},
		},
		{
			name:     "not JSON",
			envelope: []byte("-----BEGIN"),
			code:     kiln.EINVALID,
			want:     []string{"not a DSSE JSON envelope"},
		},
		{
			name:     "unknown envelope field",
			envelope: []byte(`{"payload":"","payloadType":"x","signatures":[{"sig":""}],"extra":1}`),
			code:     kiln.EINVALID,
			want:     []string{`unknown field "extra"`},
		},
		{
			name:     "no signatures",
			envelope: tamper(t, env, func(e *dsse.Envelope) { e.Signatures = nil }),
			code:     kiln.EINVALID,
			want:     []string{"carries no signature"},
		},
		{
			name:     "signature not base64",
			envelope: tamper(t, env, func(e *dsse.Envelope) { e.Signatures[0].Sig = "!!" }),
			code:     kiln.EINVALID,
			want:     []string{"signatures[0].sig is not base64"},
		},
		{
			name:    "version without artifact",
			version: edit(func(v *kiln.Version) { v.Provenance.Artifact = nil }),
			code:    kiln.EINVALID,
			want:    []string{"has no artifact"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pub, e, ver := s.Public(), env, v
			if tc.pub != nil {
				pub = tc.pub
			}
			if tc.envelope != nil {
				e = tc.envelope
			}
			if tc.version != nil {
				ver = tc.version
			}
			err := VerifyVersion(pub, e, ver)
			if err == nil {
				t.Fatal("verified; want an error")
			}
			if got := kiln.ErrorCode(err); got != tc.code {
				t.Errorf("code %s; want %s (%v)", got, tc.code, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestVerifyVersionRejectsOtherKeyTypes(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, pub := range []any{nil, "key", []byte(s.Public()), ed25519.PublicKey{1, 2, 3}} {
		if err := VerifyVersion(pub, env, v); kiln.ErrorCode(err) != kiln.EINVALID {
			t.Errorf("VerifyVersion with %T: %v; want EINVALID", pub, err)
		}
	}
}

func TestSignVersionNeedsArtifact(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	v.Provenance.Artifact = nil
	if _, err := s.SignVersion(v); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("no artifact: %v; want EINVALID", err)
	}
	v = testVersion()
	v.Provenance.Artifact.Digest = "md5:abc"
	if _, err := s.SignVersion(v); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("bad digest: %v; want EINVALID", err)
	}
	if _, err := s.SignVersion(nil); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("nil version: %v; want EINVALID", err)
	}
}

// TestEnvelopeAcceptsURLSafeBase64 re-encodes a kiln envelope in the other
// base64 alphabet, which DSSE verifiers must accept.
func TestEnvelopeAcceptsURLSafeBase64(t *testing.T) {
	s := newTestSigner(t)
	v := testVersion()
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	url := tamper(t, env, func(e *dsse.Envelope) {
		p, _ := base64.StdEncoding.DecodeString(e.Payload)
		e.Payload = base64.URLEncoding.EncodeToString(p)
		sig, _ := base64.StdEncoding.DecodeString(e.Signatures[0].Sig)
		e.Signatures[0].Sig = base64.URLEncoding.EncodeToString(sig)
	})
	if err := VerifyVersion(s.Public(), url, v); err != nil {
		t.Errorf("URL-safe base64 envelope: %v", err)
	}
}

func BenchmarkSignVersion(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := NewSigner(key)
	v := testVersion()
	for b.Loop() {
		if _, err := s.SignVersion(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyVersion(b *testing.B) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := NewSigner(key)
	v := testVersion()
	env, err := s.SignVersion(v)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := VerifyVersion(s.Public(), env, v); err != nil {
			b.Fatal(err)
		}
	}
}

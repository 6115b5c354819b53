package sign

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
)

// withDisks returns testVersion with a raw and a qcow2 disk image, raw
// listed first (the store returns them sorted by format).
func withDisks() *kiln.Version {
	v := testVersion()
	v.Provenance.Artifacts = []kiln.Artifact{
		{Ref: "local:sha256:" + strings.Repeat("2b", 32), Digest: "sha256:" + strings.Repeat("2b", 32), Size: 400 << 20, Format: kiln.FormatRaw},
		{Ref: "local:sha256:" + strings.Repeat("1a", 32), Digest: "sha256:" + strings.Repeat("1a", 32), Size: 200 << 20, Format: kiln.FormatQCOW2},
	}
	return v
}

// Every disk image is an in-toto subject of the signed statement, named
// after the version and its format, and the signature covers its digest.
func TestSignVersionDiskArtifacts(t *testing.T) {
	s := newTestSigner(t)
	v := withDisks()
	env, err := s.SignVersion(v)
	if err != nil {
		t.Fatal(err)
	}
	var e struct{ Payload string }
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeStatement(payload)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, sub := range st.Subject {
		names = append(names, sub.Name+"="+sub.Digest["sha256"][:4])
	}
	if got, want := strings.Join(names, " "), "appserver-3=0f0f appserver-3.qcow2=1a1a appserver-3.raw=2b2b"; got != want {
		t.Errorf("subjects = %s, want %s", got, want)
	}
	if err := VerifyVersion(s.Public(), env, v); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// Read back in the store's order, it still verifies.
	back := withDisks()
	back.Provenance.Artifacts[0], back.Provenance.Artifacts[1] = back.Provenance.Artifacts[1], back.Provenance.Artifacts[0]
	if err := VerifyVersion(s.Public(), env, asStored(back)); err != nil {
		t.Fatalf("verify the stored order: %v", err)
	}

	for _, tc := range []struct {
		name string
		edit func(v *kiln.Version)
		want string
	}{
		{"qcow2 digest changed", func(v *kiln.Version) {
			v.Provenance.Artifacts[1].Digest = "sha256:" + strings.Repeat("99", 32)
		}, "differs from the registry's sha256:9999"},
		{"disk image dropped", func(v *kiln.Version) { v.Provenance.Artifacts = v.Provenance.Artifacts[:1] }, "has 3 subjects; the registry records 2 artifacts"},
		{"disk image added", func(v *kiln.Version) {
			v.Provenance.Artifacts = append(v.Provenance.Artifacts, kiln.Artifact{Ref: "x", Digest: "sha256:" + strings.Repeat("33", 32), Format: "vhd"})
		}, "has 3 subjects; the registry records 4 artifacts"},
		{"format swapped", func(v *kiln.Version) {
			v.Provenance.Artifacts[0].Format, v.Provenance.Artifacts[1].Format = kiln.FormatQCOW2, kiln.FormatRaw
		}, "differs from the registry's"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := withDisks()
			tc.edit(w)
			err := VerifyVersion(s.Public(), env, w)
			if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ECONFLICT containing %q", err, tc.want)
			}
		})
	}

	// A version without disk images signs exactly as before: one subject,
	// no "artifacts" in the predicate.
	plain, err := NewStatement(testVersion())
	if err != nil {
		t.Fatal(err)
	}
	b, err := plain.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Subject) != 1 || strings.Contains(string(b), `"artifacts"`) || strings.Contains(string(b), `"format"`) {
		t.Errorf("statement of a version without disk images changed: %s", b)
	}
}

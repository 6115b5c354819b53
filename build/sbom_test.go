package build

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// sbomRun records web-1 with two packages and an artifact in a fresh
// SQLite registry, and returns a run of a Builder that seals SBOMs with
// sealer.
func sbomRun(t *testing.T, sealer func(*sign.Signer) SBOMSealer) (*run, *kiln.Version, *sign.Signer, *store.DB) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s := sign.NewSigner(key)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	art := kiln.Artifact{Ref: "local:web", Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Artifact: &art, BuiltBy: "test", Packages: []kiln.Package{
		{Name: "base-files", Version: "12.4", Architecture: "amd64", Source: "base-files", SourceVersion: "12.4"},
		{Name: "libc6", Version: "2.36-9", Architecture: "amd64", Source: "glibc", SourceVersion: "2.36-9"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{Registry: db, Logger: slog.New(slog.DiscardHandler), Clock: time.Now, SBOM: sealer(s)}
	r := &run{b: b, img: &definition.Image{Name: "web"}, rep: &reporter{image: "web"}, licences: map[string]string{"libc6": "LGPL-2.1-or-later"}}
	return r, v, s, db
}

// A build keeps both SBOMs with the version, signed, with the licences
// read from its root filesystem.
func TestAttachSBOMs(t *testing.T) {
	r, v, s, db := sbomRun(t, func(s *sign.Signer) SBOMSealer { return s })
	ctx := context.Background()
	r.attachSBOMs(ctx, v)
	for _, pt := range []string{sign.PredicateSPDX, sign.PredicateCycloneDX} {
		att, err := db.Attachment(ctx, v.Ref(), sign.SBOMAttachment(pt))
		if err != nil {
			t.Fatalf("%s: %v\nbuild log:\n%s", pt, err, r.rep.bytes())
		}
		got, doc, err := sign.VerifySBOM(s.Public(), att.Data, v)
		if err != nil || got != pt {
			t.Fatalf("%s: verify: %v (%s)", pt, err, got)
		}
		for _, want := range []string{"pkg:deb/", "libc6", "LGPL-2.1-or-later", "glibc"} {
			if !strings.Contains(string(doc), want) {
				t.Errorf("%s SBOM lacks %q", pt, want)
			}
		}
	}
	if log := string(r.rep.bytes()); !strings.Contains(log, "spdx SBOM kept as sbom.spdx.dsse.json: 2 packages from 2 source packages, licence NOASSERTION for 1") {
		t.Errorf("build log:\n%s", log)
	}
}

type failingSealer struct{}

func (failingSealer) SealSBOM(*kiln.Version, string, []byte) (*kiln.Attachment, error) {
	return nil, errors.New("key is unreadable")
}

// An SBOM that cannot be made leaves the version recorded without it and
// says so in the build log, naming the command that makes it later.
func TestAttachSBOMsFailureIsAWarning(t *testing.T) {
	r, v, _, db := sbomRun(t, func(*sign.Signer) SBOMSealer { return failingSealer{} })
	ctx := context.Background()
	r.attachSBOMs(ctx, v)
	atts, err := db.ListAttachments(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range atts {
		if strings.HasPrefix(a.Name, "sbom.") {
			t.Errorf("kept %s after a failure", a.Name)
		}
	}
	log := string(r.rep.bytes())
	for _, want := range []string{
		"warning: no spdx SBOM kept with web-1: key is unreadable; make it later with `kiln version sbom web-1 --format spdx --generate`",
		"warning: no cyclonedx SBOM kept with web-1",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("build log lacks %q:\n%s", want, log)
		}
	}
}

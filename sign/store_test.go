package sign_test

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// TestVerifyAfterRegistryRoundTrip signs a version as CreateVersion
// returns it and verifies it as a later FindVersion reads it back from a
// real SQLite registry: what the store normalizes (time zone and
// precision, package order) must not break the signature.
func TestVerifyAfterRegistryRoundTrip(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "kiln.db"), dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, name := range []string{"debian-base", "appserver"} {
		if err := db.CreateImage(ctx, &kiln.Image{Name: name}); err != nil {
			t.Fatal(err)
		}
	}
	digest := "sha256:" + strings.Repeat("5a", 32)
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "debian-base"}); err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 3, 1, 4, 20, 0, 987654321, time.FixedZone("CET", 3600))
	created, err := db.CreateVersion(ctx, &kiln.NewVersion{
		Image:  "appserver",
		SemVer: "1.2.3",
		Tags:   kiln.Tags{"team": "web"},
		Provenance: kiln.Provenance{
			Base: &kiln.VersionRef{Image: "debian-base", Number: 1},
			Sources: []kiln.Source{
				{Kind: kiln.SourceDefinition, Ref: "images/appserver.kiln.hcl", Digest: "sha256:" + strings.Repeat("ab", 32)},
				{Kind: kiln.SourceOrigin, Ref: "bookworm"},
			},
			Packages: []kiln.Package{
				{Name: "zlib1g", Version: "1:1.2.13.dfsg-1", Architecture: "amd64"},
				{Name: "bash", Version: "5.2.15-2+b7", Architecture: "amd64"},
				{Name: "bash", Version: "5.2.15-2+b7", Architecture: "arm64"},
			},
			Artifact:   &kiln.Artifact{Ref: "local:" + digest, Digest: digest, Size: 4096},
			BuiltBy:    "test",
			StartedAt:  started,
			FinishedAt: started.Add(90 * time.Second),
		},
	})
	if err != nil {
		t.Fatal(err)
	}

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := sign.NewSigner(key)
	env, err := s.SignVersion(created)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := db.SetStatus(ctx, created.Ref(), kiln.StatusTested, "tests passed"); err != nil {
		t.Fatal(err)
	}
	found, err := db.FindVersion(ctx, created.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if err := sign.VerifyVersion(s.Public(), env, found); err != nil {
		t.Fatalf("version read back from the registry does not verify: %v", err)
	}
	// The check can fail: the same envelope against another version.
	other, err := db.FindVersion(ctx, kiln.VersionRef{Image: "debian-base", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	other.Provenance.Artifact = &kiln.Artifact{Ref: "local:" + digest, Digest: digest}
	if err := sign.VerifyVersion(s.Public(), env, other); kiln.ErrorCode(err) != kiln.ECONFLICT {
		t.Errorf("envelope of appserver-1 verified against debian-base-1: %v", err)
	}
}

// TestReproductionKeptSignedWithTheCheck records rebuild checks in a real
// SQLite registry with the signer's SealReproduction as their Seal: each
// check's signed statement is kept in the same transaction under its own
// attachment, ListReproductions names it, and it verifies against the
// version read back, saying what the record says. A check whose signing
// fails is not recorded at all.
func TestReproductionKeptSignedWithTheCheck(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "token:ops")
	dir := t.TempDir()
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "kiln.db"), dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	s := sign.NewSigner(key)
	db.SealVersionsWith(s.Seal)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "stamp"}); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("5a", 32)
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "stamp", Provenance: kiln.Provenance{Method: kiln.MethodFresh,
		Artifact: &kiln.Artifact{Ref: "local:" + digest, Digest: digest}, SourceDateEpoch: 1765065600, SourceDateEpochFrom: "git commit 3c1f"}})
	if err != nil {
		t.Fatal(err)
	}
	seal := func(r *kiln.Reproduction) (*kiln.Attachment, error) { return s.SealReproduction(v, r) }
	rebuilt := "sha256:" + strings.Repeat("e1", 32)
	files := []kiln.DifferingFile{{Path: "etc/stamp", What: []string{"content"}, Step: "shell (stamp.kiln.hcl:5)"}}
	first := &kiln.Reproduction{Version: v.Ref(), Digest: rebuilt, Summary: "1 files differ", DifferingFiles: 1, Files: files, Seal: seal}
	if err := db.RecordReproduction(ctx, first); err != nil {
		t.Fatal(err)
	}
	if first.Attestation != first.AttestationName() {
		t.Errorf("recorded check names attachment %q; want %q", first.Attestation, first.AttestationName())
	}
	if err := db.RecordReproduction(ctx, &kiln.Reproduction{Version: v.Ref(), Identical: true, Digest: digest, Seal: seal}); err != nil {
		t.Fatal(err)
	}
	boom := &kiln.Reproduction{Version: v.Ref(), Identical: true, Digest: digest,
		Seal: func(*kiln.Reproduction) (*kiln.Attachment, error) { return nil, kiln.Errorf(kiln.EINVALID, "no key") }}
	if err := db.RecordReproduction(ctx, boom); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Errorf("a check whose signing fails: %v; want the signing error", err)
	}

	rs, err := db.ListReproductions(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 {
		t.Fatalf("%d checks recorded; want 2 (the one whose signing failed is not)", len(rs))
	}
	found, err := db.FindVersion(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Attestation == "" || r.Attestation != r.AttestationName() {
			t.Fatalf("check at %s lists attestation %q; want %q", r.At, r.Attestation, r.AttestationName())
		}
		att, err := db.Attachment(ctx, v.Ref(), r.Attestation)
		if err != nil {
			t.Fatal(err)
		}
		p, err := sign.VerifyReproduction([]crypto.PublicKey{s.Public()}, att.Data, found)
		if err != nil {
			t.Fatalf("the signed check %s does not verify against %s read back: %v", r.Attestation, found.Name, err)
		}
		if p.Identical != r.Identical || p.Rebuilt["sha256"] != strings.TrimPrefix(r.Digest, "sha256:") || p.CheckedBy != "token:ops" ||
			!p.CheckedAt.Equal(r.At) || p.DifferingFiles != r.DifferingFiles || p.SourceDateEpoch != 1765065600 {
			t.Errorf("signed check %+v disagrees with the record %+v", p, r)
		}
	}
	as, err := db.ListAttachments(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, a := range as {
		if strings.HasPrefix(a.Name, "reproduction.") {
			kept = append(kept, a.Name)
		}
	}
	if len(kept) != 2 {
		t.Errorf("reproduction attachments %v; want one per recorded check", kept)
	}
}

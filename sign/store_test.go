package sign_test

import (
	"context"
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

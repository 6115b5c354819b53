package cli

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// `kiln version rebuild --check` records the check and, with kiln's
// signing key at hand, keeps it as a signed in-toto statement about the
// version's artifact that verifies and says what the record says;
// without a key it records the check unsigned and says so.
func TestRecordCheckSigned(t *testing.T) {
	ctx := kiln.WithActor(context.Background(), "local:alice")
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer := sign.NewSigner(key)
	db.SealVersionsWith(signer.Seal)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "stamp"}); err != nil {
		t.Fatal(err)
	}
	digest := "sha256:" + strings.Repeat("c", 64)
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "stamp", Provenance: kiln.Provenance{Method: kiln.MethodFresh,
		Artifact: &kiln.Artifact{Ref: "local:" + digest, Digest: digest}, SourceDateEpoch: 1765065600, SourceDateEpochFrom: "git commit 3c1f"}})
	if err != nil {
		t.Fatal(err)
	}
	rep := &build.RebuildReport{Version: v.Ref(), Recorded: digest, Rebuilt: "sha256:" + strings.Repeat("d", 64),
		Files: []build.FileDiff{{Path: "etc/stamp", What: []string{"content"}, Step: "shell (stamp.kiln.hcl:5)"}}, Elapsed: 41 * time.Second}

	var progress bytes.Buffer
	if err := recordCheck(ctx, &Services{Registry: db, Reproductions: db, Signer: signer}, rep, &progress); err != nil {
		t.Fatal(err)
	}
	rs, err := db.ListReproductions(ctx, v.Ref())
	if err != nil || len(rs) != 1 || rs[0].Attestation == "" {
		t.Fatalf("checks %+v %v; want one, signed", rs, err)
	}
	if want := "check recorded with stamp-1 and signed: attachment " + rs[0].Attestation; !strings.Contains(progress.String(), want) {
		t.Errorf("progress %q lacks %q", progress.String(), want)
	}
	att, err := db.Attachment(ctx, v.Ref(), rs[0].Attestation)
	if err != nil {
		t.Fatal(err)
	}
	p, err := sign.VerifyReproduction([]crypto.PublicKey{signer.Public()}, att.Data, v)
	if err != nil {
		t.Fatal(err)
	}
	if p.Identical || p.Rebuilt["sha256"] != strings.Repeat("d", 64) || p.CheckedBy != "local:alice" || p.DifferingFiles != 1 ||
		p.Files[0].Step != "shell (stamp.kiln.hcl:5)" || !strings.Contains(p.Summary, "etc/stamp") {
		t.Errorf("signed check %+v; want the report's", p)
	}

	progress.Reset()
	rep.Identical, rep.Files, rep.Rebuilt = true, nil, digest
	if err := recordCheck(ctx, &Services{Registry: db, Reproductions: db}, rep, &progress); err != nil {
		t.Fatal(err)
	}
	if rs, _ := db.ListReproductions(ctx, v.Ref()); len(rs) != 2 || !rs[0].Identical || rs[0].Attestation != "" {
		t.Errorf("the check without a key: %+v; want recorded, unsigned", rs[0])
	}
	if !strings.Contains(progress.String(), "unsigned: no signing key here") {
		t.Errorf("progress %q does not say the check is unsigned", progress.String())
	}
}

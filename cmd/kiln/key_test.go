package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/sign"
)

// recordSigned records a built version of appserver, signed with the
// data directory's key as kiln signs it, and returns its name.
func recordSigned(t *testing.T, dir, content string) string {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, _, err := openDB(ctx, cli.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	art, err := arts.Put(ctx, bytes.NewReader([]byte(content)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.FindImage(ctx, "appserver"); err != nil {
		if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: art, BuiltBy: "ci"}})
	if err != nil {
		t.Fatal(err)
	}
	return v.Name
}

// launchCheck runs the launch use case's checks (status, artifact,
// signature) on name as kiln wires it, without booting anything.
func launchCheck(t *testing.T, dir, name string) error {
	t.Helper()
	ctx := context.Background()
	db, signer, err := openDB(ctx, cli.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ref, _ := kiln.ParseVersionRef("version", name)
	g := newGraph(db, signer, cli.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if g.launcher == nil {
		g.on(nil, nil)
	}
	_, err = g.launcher.Check(ctx, ref, nil)
	return err
}

// A lost signing key is not silently replaced while signed versions
// exist; `kiln key rotate` starts a new key and keeps the old one trusted,
// so earlier versions still verify and launch.
func TestLostKeyRefusedAndRotation(t *testing.T) {
	dir := t.TempDir()
	keyPath := filepath.Join(dir, sign.DefaultKeyPath)
	old := recordSigned(t, dir, "old image\n")
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}

	// The key is lost: kiln refuses to start rather than make a new one.
	if err := os.Remove(keyPath); err != nil {
		t.Fatal(err)
	}
	_, errs, code := run(t, dir, "image", "list")
	if code == 0 || !strings.Contains(errs, "is missing") || !strings.Contains(errs, "1 signed version") ||
		!strings.Contains(errs, "Restore the key file") || !strings.Contains(errs, "docs/signing.md") {
		t.Fatalf("start without the key: exit %d: %s", code, errs)
	}
	if _, err := os.Stat(keyPath); err == nil {
		t.Fatal("a new signing key was created although signed versions exist")
	}
	// Restored from the backup, it works again.
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	oldID := strings.Fields(strings.Split(mustRun(t, dir, "key", "list"), "\n")[1])[0]

	out := mustRun(t, dir, "key", "rotate")
	if !strings.Contains(out, "trusted for verification") || !strings.Contains(out, oldID) {
		t.Fatalf("key rotate: %s", out)
	}
	list := mustRun(t, dir, "key", "list")
	if !strings.Contains(list, oldID) || strings.Count(list, "  trusted  ") != 1 || strings.Count(list, "  signing  ") != 1 {
		t.Fatalf("key list after rotate:\n%s", list)
	}
	newer := recordSigned(t, dir, "new image\n")
	for _, name := range []string{old, newer} {
		if out, errs, code := run(t, dir, "version", "verify", name); code != 0 {
			t.Errorf("verify %s after rotation: exit %d %s%s", name, code, out, errs)
		}
		if err := launchCheck(t, dir, name); err != nil {
			t.Errorf("launch check of %s after rotation: %v", name, err)
		}
	}
	// The new version is signed by the new key, not the old one.
	ctx := context.Background()
	db, signer, err := openDB(ctx, cli.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := kiln.ParseVersionRef("version", newer)
	att, err := db.Attachment(ctx, ref, sign.EnvelopeAttachment)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(att.Data, []byte(oldID)) || !bytes.Contains(att.Data, []byte(signer.KeyID())) || signer.KeyID() == oldID {
		t.Errorf("%s is not signed by the new key %s: %s", newer, signer.KeyID(), att.Data)
	}
	// Without the trusted old key the old version no longer verifies:
	// the trust really comes from keys/trusted.
	if err := os.RemoveAll(filepath.Join(dir, sign.TrustedKeysDir)); err != nil {
		t.Fatal(err)
	}
	if err := launchCheck(t, dir, old); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("launch of %s without the trusted old key: %v", old, err)
	}
}

// `kiln version verify` also verifies the signed rebuild checks kept with
// the version (as `kiln version rebuild --check` keeps them with kiln's
// key) and says what each attests; a check signed by a key kiln does not
// trust fails the command, naming the attachment.
func TestVerifySignedRebuildChecks(t *testing.T) {
	dir := t.TempDir()
	name := recordSigned(t, dir, "stamp image\n")
	ref, _ := kiln.ParseVersionRef("version", name)
	// record keeps a check signed by s, or by kiln's own key when nil.
	record := func(s *sign.Signer, identical bool, digest string) string {
		t.Helper()
		ctx := kiln.WithActor(context.Background(), "local:alice")
		db, own, err := openDB(ctx, cli.Config{DataDir: dir}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if s == nil {
			s = own
		}
		v, err := db.FindVersion(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		if digest == "" {
			digest = v.Provenance.Artifact.Digest
		}
		r := &kiln.Reproduction{Version: ref, Identical: identical, Digest: digest,
			Seal: func(r *kiln.Reproduction) (*kiln.Attachment, error) { return s.SealReproduction(v, r) }}
		if !identical {
			r.DifferingFiles, r.Summary = 1, "1 files differ"
		}
		if err := db.RecordReproduction(ctx, r); err != nil {
			t.Fatal(err)
		}
		return r.Attestation
	}
	first := record(nil, false, "sha256:"+strings.Repeat("d", 64))
	second := record(nil, true, "")
	out, errs, code := run(t, dir, "version", "verify", name)
	if code != 0 {
		t.Fatalf("verify with two signed checks: exit %d %s%s", code, out, errs)
	}
	for _, want := range []string{
		name + ": signed rebuild check verified (" + first + "): different, 1 files differ, rebuilt sha256:" + strings.Repeat("d", 64),
		name + ": signed rebuild check verified (" + second + "): identical, bit for bit",
		"by local:alice",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}

	_, key, _ := ed25519.GenerateKey(rand.Reader)
	forged := record(sign.NewSigner(key), true, "")
	out, errs, code = run(t, dir, "version", "verify", name)
	if code == 0 || !strings.Contains(errs, "the signed rebuild check "+forged+" of "+name) || !strings.Contains(errs, "does not verify") {
		t.Errorf("verify with a check signed by another key: exit %d %s%s; want a failure naming %s", code, out, errs, forged)
	}
}

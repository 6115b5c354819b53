package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// verifyServer records appserver-1 with a real artifact in dir, signed as
// a build on the server signs it, and starts `kiln serve` (the real
// wiring) on dir. It returns the server's URL, a viewer token, the signer
// and the artifact's content.
func verifyServer(t *testing.T, dir string) (string, string, *sign.Signer, []byte) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	signer, _, err := sign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	db.SealVersionsWith(signer.Seal)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("the bytes of appserver-1's disk image\n")
	art, err := arts.Put(ctx, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", SemVer: "1.0.4", Tags: kiln.Tags{"team": "web"},
		Provenance: kiln.Provenance{Artifact: art, BuiltBy: "ci",
			Packages: []kiln.Package{{Name: "openssl", Version: "3.0.11-1~deb12u2", Architecture: "amd64"}}}}); err != nil {
		t.Fatal(err)
	}
	_, viewer, err := db.CreateToken(ctx, &kiln.NewToken{Name: "laptop", Role: kiln.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(sctx, cli.Config{DataDir: dir}, logger, cli.ServeOptions{Listen: "127.0.0.1:0"})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrRE := regexp.MustCompile(`listening"? addr=(\S+)`)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if m := addrRE.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1], viewer, signer, content
		}
	}
	t.Fatalf("kiln serve did not start:\n%s", logs.String())
	return "", "", nil, nil
}

// A laptop with a viewer token checks a version's signed provenance
// through --server as the server's machine checks it locally: the same
// verdict, the same message when the record was changed, the key given
// with --key or the server's (and then it says so).
func TestRemoteVerifySameAsLocal(t *testing.T) {
	serverDir, laptop := t.TempDir(), t.TempDir()
	url, viewer, signer, content := verifyServer(t, serverDir)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no credentials file but ours
	t.Setenv("KILN_SERVER", "")
	t.Setenv("KILN_TOKEN", viewer)
	id := signer.KeyID()
	local := func(args ...string) (string, string, int) { return run(t, serverDir, args...) }
	remote := func(args ...string) (string, string, int) {
		return run(t, laptop, append([]string{"--server", url}, args...)...)
	}

	// The key: the server's export and the laptop's are the same bytes.
	lkey, lerr, lcode := local("key", "export")
	rkey, rerr, rcode := remote("key", "export")
	if lcode != 0 || rcode != 0 || lkey != string(signer.PublicKeyPEM()) || rkey != lkey {
		t.Fatalf("key export: local exit %d %q, remote exit %d %q:\n%s\n%s", lcode, lerr, rcode, rerr, lkey, rkey)
	}
	trusted := filepath.Join(laptop, "kiln.pub") // handed over out of band
	if err := os.WriteFile(trusted, []byte(lkey), 0o644); err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	other := sign.NewSigner(otherKey)
	otherFile := filepath.Join(laptop, "other.pub")
	if err := os.WriteFile(otherFile, other.PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}

	// A good version verifies both ways.
	out, errs, code := local("version", "verify", "appserver-1")
	if code != 0 || !strings.Contains(out, "appserver-1: signature and artifact content verified (key "+id) {
		t.Errorf("local verify: exit %d: %s%s", code, out, errs)
	}
	out, errs, code = remote("version", "verify", "appserver-1")
	if code != 0 || !strings.Contains(out, "appserver-1: signature verified against the registry's record (key "+id) ||
		!strings.Contains(out, "not re-hashed") ||
		!strings.Contains(out, "signature checked with the server's key "+id+"; pass --key to check against a key you trust") {
		t.Errorf("remote verify with the server's key: exit %d: %s%s", code, out, errs)
	}
	out, errs, code = remote("version", "verify", "appserver-1", "--key", trusted)
	if code != 0 || !strings.Contains(out, "(key "+id) || strings.Contains(out, "server's key") {
		t.Errorf("remote verify --key: exit %d: %s%s", code, out, errs)
	}
	if out, errs, code = local("version", "verify", "appserver-1", "--key", trusted); code != 0 {
		t.Errorf("local verify --key: exit %d: %s%s", code, out, errs)
	}

	// A key that did not sign it fails both ways, naming both keys.
	_, lerr, lcode = local("version", "verify", "appserver-1", "--key", otherFile)
	_, rerr, rcode = remote("version", "verify", "appserver-1", "--key", otherFile)
	want := "signature of appserver-1 does not verify with key " + other.KeyID() + "; the envelope says it was signed by key " + id
	if lcode != 1 || rcode != 1 || !strings.Contains(lerr, want) || rerr != lerr {
		t.Errorf("verify with another key: local exit %d %q, remote exit %d %q; want exit 1 saying %q", lcode, lerr, rcode, rerr, want)
	}
	if _, errs, code := remote("version", "verify", "appserver-1", "--key", filepath.Join(laptop, "missing.pub")); code != 1 || !strings.Contains(errs, "--key") {
		t.Errorf("missing --key file: exit %d %q", code, errs)
	}
	if _, errs, code := remote("version", "verify", "appserver-9"); code != 1 || !strings.Contains(errs, "appserver-9") {
		t.Errorf("unknown version: exit %d %q", code, errs)
	}

	// The envelope from the provenance route passes the documented openssl
	// recipe with the exported key and the artifact.
	t.Run("openssl recipe", func(t *testing.T) {
		for _, tool := range []string{"openssl", "jq", "base64", "sha256sum", "bash"} {
			ci.Tool(t, tool, tool)
		}
		doc, err := os.ReadFile("../../docs/signing.md")
		if err != nil {
			t.Fatal(err)
		}
		_, rest, ok := strings.Cut(string(doc), "<!-- recipe: verify-with-openssl -->\n```sh\n")
		script, _, ok2 := strings.Cut(rest, "\n```")
		if !ok || !ok2 {
			t.Fatal("docs/signing.md has no recipe block")
		}
		req, _ := http.NewRequest(http.MethodGet, url+"/api/v1/images/appserver/versions/1/provenance", nil)
		req.Header.Set("Authorization", "Bearer "+viewer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		env, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET provenance: %d %v %s", resp.StatusCode, err, env)
		}
		dir := t.TempDir()
		for f, b := range map[string][]byte{"envelope.json": env, "kiln.pub": []byte(rkey), "artifact": content} {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command("bash", "-c", script+"\n")
		cmd.Dir = dir
		got, err := cmd.CombinedOutput()
		sum := sha256.Sum256(content)
		if err != nil || !strings.Contains(string(got), "verified: appserver-1 sha256:"+hex.EncodeToString(sum[:])) {
			t.Errorf("the openssl recipe on the served envelope: %v\n%s", err, got)
		}
	})

	// Someone with write access to the database changes who built it: the
	// record no longer matches what was signed, and both ways say so alike.
	raw, err := sql.Open("sqlite", filepath.Join(serverDir, "kiln.db")+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if _, err := raw.Exec(`DROP TRIGGER provenance_no_update`); err != nil {
		t.Fatal(err)
	}
	if res, err := raw.Exec(`UPDATE provenance SET built_by = 'mallory'`); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampered with %d rows", n)
	}
	_, lerr, lcode = local("version", "verify", "appserver-1")
	_, rerr, rcode = remote("version", "verify", "appserver-1")
	_, kerr, kcode := remote("version", "verify", "appserver-1", "--key", trusted)
	want = `provenance.built_by: signed "ci", registry "mallory"`
	if lcode != 1 || !strings.Contains(lerr, want) || !strings.Contains(lerr, "do not trust it") {
		t.Errorf("local verify of a changed record: exit %d %q; want exit 1 saying %q", lcode, lerr, want)
	}
	if rcode != 1 || rerr != lerr || kcode != 1 || kerr != lerr {
		t.Errorf("remote verify of a changed record: exit %d %q and with --key exit %d %q; want what local says: %q", rcode, rerr, kcode, kerr, lerr)
	}
}

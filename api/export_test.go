package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// exportServer is a signing server with an artifact store holding a root
// filesystem and a qcow2 disk image, and one token per role.
func exportServer(t *testing.T) (*httptest.Server, *store.DB, *artifact.Store, map[kiln.Role]string, [2]*kiln.Artifact, [2][]byte) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	dir := t.TempDir()
	db, err := store.Open(ctx, "", dir, slog.New(slog.DiscardHandler), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewSigner(key)
	db.SealVersionsWith(signer.Seal)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var stored [2]*kiln.Artifact
	var content [2][]byte
	for i, c := range []string{"a root filesystem tarball", "QFI\xfb a qcow2 disk image, " + strings.Repeat("sectors ", 20000)} {
		content[i] = []byte(c)
		if stored[i], err = arts.Put(ctx, bytes.NewReader(content[i])); err != nil {
			t.Fatal(err)
		}
	}
	stored[1].Format = kiln.FormatQCOW2
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(api.New(api.Config{SigningKey: signer.Public(), Artifacts: arts}.WithStores(db)))
	t.Cleanup(ts.Close)
	toks := map[kiln.Role]string{}
	for _, r := range kiln.Roles {
		_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: string(r), Role: r})
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = secret
	}
	return ts, db, arts, toks, stored, content
}

// A builder records a version with its disk image through the API (as a
// build with formats = […] does); a viewer downloads the qcow2 and the
// root filesystem with the image name and version as headers. Revoked
// versions, formats the version lacks and versions without artifacts are
// refused; a stored artifact that no longer matches its digest is cut off
// before its last byte.
func TestExportOverHTTP(t *testing.T) {
	ts, db, arts, toks, stored, content := exportServer(t)
	body, _ := json.Marshal(map[string]any{"semver": "1.0.0", "artifact": stored[0], "artifacts": []any{stored[1]}})
	code, m := doAs(t, ts, toks[kiln.RoleBuilder], "POST", "/api/v1/images/web/versions", string(body))
	if code != 201 {
		t.Fatalf("create a version with a disk image: %d %v", code, m)
	}
	as, _ := m["provenance"].(map[string]any)["artifacts"].([]any)
	if len(as) != 1 || as[0].(map[string]any)["format"] != "qcow2" || as[0].(map[string]any)["digest"] != stored[1].Digest {
		t.Fatalf("recorded artifacts = %v", m["provenance"])
	}
	v, err := db.FindVersion(context.Background(), kiln.VersionRef{Image: "web", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	if a, err := v.Artifact(kiln.FormatQCOW2); err != nil || a.Digest != stored[1].Digest {
		t.Fatalf("registry's qcow2 = %+v, %v", a, err)
	}

	get := func(token, path string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}
	resp, b, err := get(toks[kiln.RoleViewer], "/api/v1/images/web/versions/1/artifacts/qcow2")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, content[1]) {
		t.Fatalf("export qcow2: %v, %v, %d bytes (want %d)", resp, err, len(b), len(content[1]))
	}
	for h, want := range map[string]string{
		"Content-Type": "application/octet-stream", "Content-Length": fmt.Sprint(len(content[1])),
		"Content-Disposition": `attachment; filename="web-1.qcow2"`,
		api.HeaderImage:       "web", api.HeaderVersion: "1", api.HeaderVersionName: "web-1",
		api.HeaderReleaseStatus: "candidate", api.HeaderFormat: "qcow2", api.HeaderDigest: stored[1].Digest,
	} {
		if got := resp.Header.Get(h); got != want {
			t.Errorf("header %s = %q; want %q", h, got, want)
		}
	}
	resp, b, err = get(toks[kiln.RoleViewer], "/api/v1/images/web/versions/1/artifacts/rootfs")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, content[0]) || resp.Header.Get("Content-Type") != "application/x-tar" {
		t.Fatalf("export rootfs: %v, %v, %q", resp, err, b)
	}
	// An agent token (check-ins only) may not.
	if resp, _, _ := get(toks[kiln.RoleAgent], "/api/v1/images/web/versions/1/artifacts/qcow2"); resp.StatusCode != 403 {
		t.Errorf("agent export: %d; want 403", resp.StatusCode)
	}
	// A format the version lacks: 404 naming the ones it has.
	code, m = doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/images/web/versions/1/artifacts/raw", "")
	if code != 404 || !strings.Contains(fmt.Sprint(m["message"]), "rootfs, qcow2") {
		t.Errorf("export raw: %d %v; want 404 naming rootfs, qcow2", code, m)
	}
	if code, _ := doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/images/web/versions/1/artifacts/vmdk", ""); code != 400 && code != 422 {
		t.Errorf("export vmdk: %d; want 400", code)
	}
	// Disk images without a root filesystem: refused at create.
	body, _ = json.Marshal(map[string]any{"artifacts": []any{stored[1]}})
	if code, m := doAs(t, ts, toks[kiln.RoleBuilder], "POST", "/api/v1/images/web/versions", string(body)); code != 400 || !strings.Contains(fmt.Sprint(m), "artifacts[0]") {
		t.Errorf("create with a disk image but no root filesystem: %d %v; want 400 naming artifacts[0]", code, m)
	}
	// A version with no artifact: nothing to export.
	if code, _ := doAs(t, ts, toks[kiln.RoleBuilder], "POST", "/api/v1/images/web/versions", "{}"); code != 201 {
		t.Fatalf("create web-2: %d", code)
	}
	if code, m := doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/images/web/versions/2/artifacts/rootfs", ""); code != 400 || !strings.Contains(fmt.Sprint(m["message"]), "no artifact") {
		t.Errorf("export of a version without artifact: %d %v", code, m)
	}

	// The stored qcow2 altered on disk: the transfer fails, the client
	// never holds the whole (wrong) file.
	p, err := arts.Path(stored[1].Digest)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(content[1])
	bad[100] ^= 1
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	resp, b, err = get(toks[kiln.RoleViewer], "/api/v1/images/web/versions/1/artifacts/qcow2")
	if err == nil || len(b) >= len(content[1]) {
		t.Errorf("export of a corrupted qcow2: status %v, %d of %d bytes, err %v; want a failed transfer", resp.Status, len(b), len(content[1]), err)
	}

	// Revoked: refused.
	if err := os.WriteFile(p, content[1], 0o644); err != nil {
		t.Fatal(err)
	}
	if code, m := doAs(t, ts, toks[kiln.RoleOperator], "POST", "/api/v1/images/web/versions/1/status", `{"status":"tested"}`); code >= 300 {
		t.Fatalf("tested: %d %v", code, m)
	}
	if code, m := doAs(t, ts, toks[kiln.RoleOperator], "POST", "/api/v1/images/web/versions/1/status", `{"status":"ready"}`); code >= 300 {
		t.Fatalf("tested: %d %v", code, m)
	}
	if code, m := doAs(t, ts, toks[kiln.RoleOperator], "POST", "/api/v1/images/web/versions/1/revoke", `{"reason":"CVE"}`); code >= 300 {
		t.Fatalf("revoke: %d %v", code, m)
	}
	if code, m := doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/images/web/versions/1/artifacts/qcow2", ""); code != 409 || !strings.Contains(fmt.Sprint(m["message"]), "revoked") {
		t.Errorf("export of a revoked version: %d %v; want 409", code, m)
	}
}

// Without an artifact store the route answers 503.
func TestExportWithoutStore(t *testing.T) {
	ts, _, _, toks := signingServer(t, true)
	if code, m := doAs(t, ts, toks[kiln.RoleViewer], "GET", "/api/v1/images/web/versions/1/artifacts/rootfs", ""); code != 503 {
		t.Errorf("export without an artifact store: %d %v; want 503", code, m)
	}
}

package client_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/client"
	"github.com/kiln-project/kiln/store"
)

// server is a real API on a real SQLite registry, with one token per role.
func server(t *testing.T) (*store.DB, string, map[kiln.Role]string) {
	t.Helper()
	db, err := store.Open(context.Background(), "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	toks := map[kiln.Role]string{}
	for _, r := range kiln.Roles {
		_, secret, err := db.CreateToken(context.Background(), &kiln.NewToken{Name: string(r), Role: r})
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = secret
	}
	ts := httptest.NewServer(api.New(api.Config{}.WithStores(db)))
	t.Cleanup(ts.Close)
	return db, ts.URL, toks
}

// The client gives the same answers as the database it talks to.
func TestRegistryOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	c, err := client.New(url, toks[kiln.RoleOperator], nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.CreateImage(ctx, &kiln.Image{Name: "basic-linux", Description: "base"}); err != nil {
		t.Fatal(err)
	}
	base, err := c.CreateVersion(ctx, &kiln.NewVersion{Image: "basic-linux", SemVer: "1.0.4", Tags: kiln.Tags{"team": "platform"},
		Provenance: kiln.Provenance{Packages: []kiln.Package{{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetStatus(ctx, base.Ref(), kiln.StatusTested, "smoke"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateTags(ctx, base.Ref(), kiln.TagUpdate{Set: kiln.Tags{"owner": "ops"}}); err != nil {
		t.Fatal(err)
	}
	remote, err := c.FindVersion(ctx, base.Ref())
	if err != nil {
		t.Fatal(err)
	}
	local, err := db.FindVersion(ctx, base.Ref())
	if err != nil {
		t.Fatal(err)
	}
	local.ID = 0 // the database row id is not part of the API
	if d := cmp.Diff(local, remote); d != "" {
		t.Errorf("version over HTTP differs from the database (-db +http):\n%s", d)
	}
	vs, total, err := c.ListVersions(ctx, kiln.VersionFilter{Image: "basic-linux", Tags: kiln.Tags{"team": "platform"}})
	if err != nil || total != 1 || len(vs) != 1 {
		t.Fatalf("list: %v %d %v", vs, total, err)
	}
	if h, err := c.History(ctx, base.Ref()); err != nil || len(h) < 3 || h[len(h)-1].Actor != "token:operator" {
		t.Fatalf("history: %v %v", h, err)
	}
	if imgs, err := c.ListImages(ctx); err != nil || len(imgs) != 1 || imgs[0].Description != "base" {
		t.Fatalf("images: %v %v", imgs, err)
	}
	if l, err := c.LatestVersion(ctx, "basic-linux", kiln.StatusTested); err != nil || l.Number != 1 {
		t.Fatalf("latest: %v %v", l, err)
	}

	// Errors come back as the kiln errors the CLI maps to exit codes.
	for _, c := range []struct {
		err  error
		code string
	}{
		{errOf(c.FindVersion(ctx, kiln.VersionRef{Image: "basic-linux", Number: 9})), kiln.ENOTFOUND},
		{c.CreateImage(ctx, &kiln.Image{Name: "basic-linux"}), kiln.ECONFLICT},
		{errOf(c.SetStatus(ctx, base.Ref(), kiln.StatusCandidate, "")), kiln.ECONFLICT},
		{errOf(c.CreateVersion(ctx, &kiln.NewVersion{Image: "basic-linux", SemVer: "1.0"})), kiln.EINVALID},
	} {
		if kiln.ErrorCode(c.err) != c.code || kiln.ErrorMessage(c.err) == "" {
			t.Errorf("got %v (%s), want %s", c.err, kiln.ErrorCode(c.err), c.code)
		}
	}
	viewer, _ := client.New(url, toks[kiln.RoleViewer], nil)
	err = viewer.CreateImage(ctx, &kiln.Image{Name: "web"})
	if kiln.ErrorCode(err) != kiln.EFORBIDDEN || !strings.Contains(err.Error(), "builder") {
		t.Errorf("viewer creating: %v", err)
	}
	bad, _ := client.New(url, "kiln_"+strings.Repeat("a", 52), nil)
	if _, err := bad.ListImages(ctx); kiln.ErrorCode(err) != kiln.EUNAUTH {
		t.Errorf("bad token: %v", err)
	}
	down, _ := client.New("http://127.0.0.1:1", toks[kiln.RoleViewer], nil)
	if _, err := down.ListImages(ctx); kiln.ErrorCode(err) != kiln.EUNAVAILABLE || strings.Contains(err.Error(), toks[kiln.RoleViewer]) {
		t.Errorf("server down: %v", err)
	}
}

func TestToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	noEnv := func(string) string { return "" }
	if tok, err := client.Token(noEnv, file); tok != "" || err != nil {
		t.Fatalf("no file: %q %v", tok, err)
	}
	if err := os.WriteFile(file, []byte("kiln_secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Token(noEnv, file); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("readable by others: %v", err)
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := client.Token(noEnv, file); tok != "kiln_secret" || err != nil {
		t.Fatalf("0600 file: %q %v", tok, err)
	}
	env := func(k string) string {
		if k == "KILN_TOKEN" {
			return "kiln_fromenv"
		}
		return ""
	}
	if tok, _ := client.Token(env, file); tok != "kiln_fromenv" {
		t.Fatalf("KILN_TOKEN: %q", tok)
	}
	if _, err := client.New("ftp://x", "t", nil); kiln.ErrorCode(err) != kiln.EINVALID {
		t.Fatalf("bad URL: %v", err)
	}
}

func errOf(vs ...any) error {
	if err, ok := vs[len(vs)-1].(error); ok {
		return err
	}
	return nil
}

// Attachments are read through the API with their content; uploads stay
// with the builds and tests on the server.
func TestAttachmentsOverHTTP(t *testing.T) {
	db, url, toks := server(t)
	ctx := context.Background()
	c, _ := client.New(url, toks[kiln.RoleViewer], nil)
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []*kiln.Attachment{
		{Name: "build.log", MediaType: "text/plain", Data: []byte("==> step 1\n\x00\xff binary too\n")},
		{Name: "empty.txt"},
	} {
		if err := db.AddAttachment(ctx, v.Ref(), a); err != nil {
			t.Fatal(err)
		}
	}
	remote, err := c.ListAttachments(ctx, v.Ref())
	if err != nil {
		t.Fatal(err)
	}
	local, _ := db.ListAttachments(ctx, v.Ref())
	if d := cmp.Diff(local, remote); d != "" {
		t.Errorf("attachment list over HTTP differs (-store +http):\n%s", d)
	}
	for _, name := range []string{"build.log", "empty.txt"} {
		remote, err := c.Attachment(ctx, v.Ref(), name)
		if err != nil {
			t.Fatal(err)
		}
		local, _ := db.Attachment(ctx, v.Ref(), name)
		if d := cmp.Diff(local, remote, cmpopts.EquateEmpty()); d != "" {
			t.Errorf("attachment %s over HTTP differs (-store +http):\n%s", name, d)
		}
	}
	if _, err := c.Attachment(ctx, v.Ref(), "test.json"); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "test.json") {
		t.Errorf("unknown attachment: %v", err)
	}
	if _, err := c.ListAttachments(ctx, kiln.VersionRef{Image: "web", Number: 9}); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Errorf("attachments of an unknown version: %v", err)
	}
	if err := c.AddAttachment(ctx, v.Ref(), &kiln.Attachment{Name: "x"}); err == nil || !strings.Contains(err.Error(), "without --server") {
		t.Errorf("upload through the API: %v", err)
	}
}

// A token is not sent over plain HTTP to a host other than loopback
// unless the caller opts in; loopback and https need no opt-in.
func TestNewRefusesCleartextToNonLoopback(t *testing.T) {
	for _, c := range []struct {
		url   string
		allow bool
		ok    bool
	}{
		{"http://kiln.example:8080", false, false},
		{"http://192.0.2.10:8080", false, false},
		{"http://kiln.example:8080", true, true},
		{"https://kiln.example:8443", false, true},
		{"http://127.0.0.1:8080", false, true},
		{"http://localhost:8080", false, true},
		{"http://[::1]:8080", false, true},
	} {
		_, err := client.New(c.url, "kiln_t", nil, client.AllowHTTP(c.allow))
		if c.ok != (err == nil) {
			t.Errorf("New(%s, allow=%v): %v", c.url, c.allow, err)
		}
		if err != nil && (kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "--allow-http") || !strings.Contains(err.Error(), "clear text")) {
			t.Errorf("New(%s): %v; want EINVALID naming --allow-http", c.url, err)
		}
	}
	// The default is to refuse.
	if _, err := client.New("http://kiln.example", "kiln_t", nil); err == nil {
		t.Error("New without options accepted plain HTTP to a remote host")
	}
}

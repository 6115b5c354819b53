package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/store"
)

// `kiln run --server` asks the server to queue runs of an estate on the
// server; the server's worker carries them out (not started here: the
// test checks what was queued).
func TestRemoteRunQueuesOnServer(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	toks := map[kiln.Role]string{}
	for _, r := range []kiln.Role{kiln.RoleViewer, kiln.RoleBuilder} {
		if _, toks[r], err = db.CreateToken(ctx, &kiln.NewToken{Name: string(r), Role: r}); err != nil {
			t.Fatal(err)
		}
	}
	ts := httptest.NewServer(api.New(api.Config{AuthCacheTTL: -1, StartRuns: runStarter{runs: db, estates: db}}.WithStores(db)))
	t.Cleanup(ts.Close)

	// An estate on "the server" (here the same machine): one image from an
	// origin tarball, one built on it.
	est := t.TempDir()
	origin := []byte("not a real image: runs are only queued here")
	sum := sha256.Sum256(origin)
	files := map[string]string{
		"origin.tar":      string(origin),
		"estate.kiln.hcl": "image \"web\" {\n  origin {\n    source = \"origin.tar\"\n    sha256 = \"" + hex.EncodeToString(sum[:]) + "\"\n  }\n}\n\nimage \"app\" {\n  base = image.web\n}\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(est, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	local := t.TempDir()

	t.Setenv("KILN_TOKEN", toks[kiln.RoleViewer])
	if _, errs, code := run(t, local, "--server", ts.URL, "run", "--estate", est, "--all"); code != 1 || !strings.Contains(errs, "builder") {
		t.Fatalf("viewer starting runs: exit %d, stderr %q", code, errs)
	}
	t.Setenv("KILN_TOKEN", toks[kiln.RoleBuilder])
	if _, errs, code := run(t, local, "--server", ts.URL, "run", "--all"); code != 1 || !strings.Contains(errs, "--estate") {
		t.Errorf("no estate: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := run(t, local, "--server", ts.URL, "run", "--estate", "relative/dir", "--all"); code != 1 || !strings.Contains(errs, "absolute path") {
		t.Errorf("relative estate: exit %d, stderr %q", code, errs)
	}
	// Runs start only from estates an admin registered.
	if _, errs, code := run(t, local, "--server", ts.URL, "run", "--estate", est, "--all"); code != 1 || !strings.Contains(errs, "not a registered estate") || !strings.Contains(errs, "kiln estate add") {
		t.Fatalf("unregistered directory: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := run(t, local, "--server", ts.URL, "run", "--estate", "web", "--all"); code != 1 || !strings.Contains(errs, "kiln estate add") {
		t.Fatalf("unregistered name: exit %d, stderr %q", code, errs)
	}
	// A pipeline that delivers without approval needs the operator role.
	auto := t.TempDir()
	for name, body := range map[string]string{
		"origin.tar":      string(origin),
		"estate.kiln.hcl": files["estate.kiln.hcl"] + "\npipeline \"all\" {\n  environments = [\"prod\"]\n}\n",
	} {
		if err := os.WriteFile(filepath.Join(auto, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	admin := kiln.WithActor(ctx, "local:test")
	for name, dir := range map[string]string{"web": est, "auto": auto} {
		if err := db.AddEstate(admin, &kiln.Estate{Name: name, Dir: dir}); err != nil {
			t.Fatal(err)
		}
	}
	if _, errs, code := run(t, local, "--server", ts.URL, "run", "--estate", "auto", "--all"); code != 1 || !strings.Contains(errs, "operator role") || !strings.Contains(errs, "prod") {
		t.Fatalf("builder starting an auto-delivering pipeline: exit %d, stderr %q", code, errs)
	}
	if runs, _, _ := db.ListRuns(ctx, kiln.RunFilter{}); len(runs) != 0 {
		t.Fatalf("refused requests queued %d runs", len(runs))
	}
	out, errs, code := run(t, local, "--server", ts.URL, "run", "--estate", "web", "--all")
	if code != 0 || !strings.Contains(out, "queued on the server") {
		t.Fatalf("kiln run --server: exit %d\n%s%s", code, out, errs)
	}
	runs, _, err := db.ListRuns(ctx, kiln.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range runs {
		got = append(got, r.Image+":"+string(r.Status))
		if !strings.Contains(r.Trigger, "api by token:builder") || r.RequestedBy != "token:builder" || r.Estate != est {
			t.Errorf("run %d trigger %q, requested by %q, estate %s: want the token and %s", r.ID, r.Trigger, r.RequestedBy, r.Estate, est)
		}
	}
	if len(runs) != 2 {
		t.Fatalf("queued runs = %v, want web and app", got)
	}
}

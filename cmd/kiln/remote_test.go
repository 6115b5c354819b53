package main

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/api"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// remoteServer starts the real API on a SQLite database that signs
// versions, as `kiln serve` does, with one token per role.
func remoteServer(t *testing.T) (string, map[kiln.Role]string, *store.DB) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	signer, _, err := sign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SealVersionsWith(signer.Seal)
	toks := map[kiln.Role]string{}
	for _, r := range kiln.Roles {
		_, secret, err := db.CreateToken(ctx, &kiln.NewToken{Name: string(r), Role: r})
		if err != nil {
			t.Fatal(err)
		}
		toks[r] = secret
	}
	ts := httptest.NewServer(api.New(api.Config{AuthCacheTTL: -1}.WithStores(db)))
	t.Cleanup(ts.Close)
	return ts.URL, toks, db
}

// normalize blanks what differs between two databases by nature: times,
// the actor (local user or token), signing key ids and instance ids.
func normalize(s string) string {
	for _, r := range []struct{ re, to string }{
		{`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`, "TIME"},
		{`\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?`, "TIME"},
		{`\d{8}_\d{4}`, "STAMP"},
		{`local:[\w.-]+|token:[\w.-]+`, "ACTOR"},
		{`"key_?id":\s*"[^"]*"`, `"keyid":"KEY"`},
		{`i-[0-9a-f]{8,}`, "ID"},
		{`[0-9a-f]{64}`, "HASH"},
		{`[A-Za-z0-9+/]{40,}={0,2}`, "B64"},
		{` +`, " "}, // table columns are as wide as the actor's name
	} {
		s = regexp.MustCompile(r.re).ReplaceAllString(s, r.to)
	}
	return s
}

// seed does to a database what no CLI command does through the API (a
// build attaches its log, a trigger queues a run), so that the commands
// reading them can be compared.
func seed(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	ref := kiln.VersionRef{Image: "basic-linux", Number: 1}
	if err := db.AddAttachment(ctx, ref, &kiln.Attachment{Name: "build.log", MediaType: "text/plain", Data: []byte("==> bake basic-linux\nI: Base system installed successfully.\n")}); err != nil {
		t.Fatal(err)
	}
	for _, img := range []string{"appserver", "basic-linux"} {
		if _, _, err := db.EnqueueRun(ctx, &kiln.NewRun{Image: img, Estate: "/srv/estates/web", Trigger: "manual",
			Stages: []kiln.Stage{{Name: "build", Kind: kiln.StageBuild}, {Name: "dev", Kind: kiln.StageDeliver, Environment: "dev"}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// The registry, fleet, advisory, pipeline and webhook commands give the
// same output and exit codes through --server as on a local database.
func TestRemoteCLISameAsLocal(t *testing.T) {
	url, toks, remoteDB := remoteServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no credentials file but ours
	t.Setenv("KILN_SERVER", "")
	// Admin: policies and webhooks are an admin's (TestRemoteCLIRefusals
	// checks the lesser roles are refused).
	t.Setenv("KILN_TOKEN", toks[kiln.RoleAdmin])
	localDir, remoteDir := t.TempDir(), t.TempDir()
	if _, _, err := sign.LoadOrCreateKey(localDir, ""); err != nil { // no "created the key" warning in the comparison
		t.Fatal(err)
	}
	files := t.TempDir()
	pk := filepath.Join(files, "pk.txt")
	secret := filepath.Join(files, "hook.secret")
	osv := filepath.Join(files, "DSA-9001-1.json")
	for name, body := range map[string]string{
		pk:     "base-files 12.4+deb12u5 amd64\nlibssl3 3.0.11-1~deb12u2 amd64\nopenssl 3.0.11-1~deb12u2 amd64\n",
		secret: "0123456789abcdef0123456789abcdef\n",
		// A package-level advisory: exposure is decided from the versions'
		// package manifests.
		osv: `{"id": "DSA-9001-1", "summary": "openssl - security update", "modified": "2099-01-01T00:00:00Z",
  "affected": [{"package": {"ecosystem": "Debian:12", "name": "openssl"},
    "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "3.0.11-1~deb12u3"}]}]}]}`,
	} {
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	compare := func(wantFail bool, args ...string) {
		t.Helper()
		lout, lerr, lcode := run(t, localDir, args...)
		rout, rerr, rcode := run(t, remoteDir, append([]string{"--server", url}, args...)...)
		name := strings.Join(args, " ")
		if (lcode != 0) != wantFail {
			t.Errorf("kiln %s: exit %d locally (%s); the comparison needs it to %s", name, lcode, lerr, map[bool]string{true: "fail", false: "succeed"}[wantFail])
		}
		if os.Getenv("KILN_DEBUG_REMOTE") != "" {
			t.Logf("kiln %s → %d\n%s%s", name, rcode, rout, rerr)
		}
		if lcode != rcode {
			t.Errorf("kiln %s: exit %d locally, %d through --server (stderr %q / %q)", name, lcode, rcode, lerr, rerr)
		}
		if d := cmp.Diff(normalize(lout), normalize(rout)); d != "" {
			t.Errorf("kiln %s: output differs (-local +server):\n%s", name, d)
		}
		if d := cmp.Diff(normalize(lerr), normalize(rerr)); d != "" {
			t.Errorf("kiln %s: stderr differs (-local +server):\n%s", name, d)
		}
	}
	const fails = true
	for _, step := range []struct {
		fails bool
		args  []string
	}{
		{args: []string{"image", "create", "basic-linux", "--description", "Debian base"}},
		{args: []string{"image", "create", "appserver"}},
		{args: []string{"image", "list"}},
		{args: []string{"image", "list", "-o", "json"}},
		{args: []string{"version", "create", "basic-linux", "--semver", "1.0.4", "--packages", pk, "--tag", "team=platform"}},
		{args: []string{"version", "create", "appserver", "--base", "basic-linux-1"}},
		{args: []string{"version", "status", "basic-linux-1", "tested", "--reason", "passed"}},
		{args: []string{"version", "status", "basic-linux-1", "ready"}},
		{args: []string{"version", "list", "basic-linux"}},
		{args: []string{"version", "list", "basic-linux", "-o", "json"}},
		{args: []string{"version", "show", "basic-linux-1"}},
		{args: []string{"version", "show", "basic-linux-1", "-o", "json"}},
		{fails, []string{"version", "status", "appserver-1", "ready"}}, // not tested
		{fails, []string{"version", "show", "nope-1"}},
		{args: []string{"instance", "register", "--image", "basic-linux", "--version", "1", "--name", "web-1", "--env", "prod", "--launched-at", "2026-01-02T03:04:05Z"}},
		{args: []string{"instance", "register", "--image", "appserver", "--version", "1", "--name", "app-1", "--env", "staging", "--launched-at", "2026-01-02T03:04:05Z"}},
		{fails, []string{"instance", "register", "--image", "appserver", "--version", "9", "--name", "app-9"}}, // unknown version
		{args: []string{"instance", "list"}},
		{args: []string{"instance", "list", "-o", "json"}},
		{args: []string{"fleet", "report"}},
		{args: []string{"fleet", "report", "--env", "prod", "-o", "json"}},
		{args: []string{"fleet", "stale"}},
		{args: []string{"fleet", "report", "--drill", "basic-linux-1"}},
		{args: []string{"fleet", "exposed", "--fixed-in", "basic-linux-2"}},
		{args: []string{"fleet", "overage", "--max-age", "30d"}},
		{args: []string{"policy", "list"}},
		{args: []string{"policy", "set-max-age", "90d", "--env", "prod"}},
		{args: []string{"policy", "set-max-age", "2w", "--env", "staging"}},
		{args: []string{"policy", "list"}},
		{args: []string{"policy", "list", "-o", "json"}},
		{args: []string{"fleet", "report"}},
		{args: []string{"fleet", "overage"}},
		{args: []string{"policy", "delete", "--env", "staging"}},
		{fails, []string{"policy", "delete", "--env", "staging"}}, // gone
		{fails, []string{"policy", "delete"}},                     // no --env
		{fails, []string{"policy", "set-max-age", "0d", "--env", "prod"}},
		{args: []string{"policy", "list"}},
		{args: []string{"instance", "show", "web-1"}},
		{args: []string{"instance", "deregister", "app-1"}},
		{fails, []string{"instance", "show", "app-1"}}, // gone
		{args: []string{"version", "tag", "basic-linux-1", "owner=ops"}},
		{args: []string{"version", "history", "basic-linux-1"}},
		{args: []string{"version", "latest", "basic-linux"}},
		{args: []string{"version", "lineage"}},
		{args: []string{"advisory", "add", "DSA-5678-1", "--fixed-in", "basic-linux-2", "--summary", "openssl"}},
		{args: []string{"advisory", "import", "osv", osv}},
		{args: []string{"advisory", "list"}},
		{args: []string{"advisory", "show", "DSA-5678-1"}},
		{args: []string{"fleet", "exposed", "--advisory", "DSA-5678-1"}},
		{args: []string{"fleet", "exposed", "--advisory", "DSA-9001-1"}},
		{args: []string{"fleet", "exposed", "--advisory", "DSA-9001-1", "-o", "json"}},
		{args: []string{"fleet", "exposed", "--advisory", "DSA-9001-1", "--release", "trixie"}},
		{args: []string{"advisory", "delete", "DSA-9001-1"}},
		{fails, []string{"advisory", "delete", "DSA-9001-1"}}, // gone
		{fails, []string{"fleet", "exposed", "--advisory", "DSA-9001-1"}},
		{args: []string{"advisory", "list", "-o", "json"}},
		{args: []string{"promote", "basic-linux-1", "--to", "dev", "--reason", "first"}},
		{fails, []string{"promote", "appserver-1", "--to", "dev"}}, // not ready
		{args: []string{"promote", "basic-linux-1", "--to", "staging"}},
		{fails, []string{"channel", "rollback", "staging", "--reason", "oops"}}, // nothing before it in staging
		{args: []string{"channel", "list"}},
		{args: []string{"channel", "history"}},
		{args: []string{"channel", "history", "--image", "basic-linux", "--env", "dev", "-o", "json"}},
		{args: []string{"channel", "history", "--limit", "1"}},
		{args: []string{"runs"}},
		{fails, []string{"run", "show", "1"}}, // no runs yet
		{args: []string{"version", "attachments", "basic-linux-1"}},
		{fails, []string{"version", "log", "basic-linux-1"}}, // no build log
		{fails, []string{"version", "attachments", "nope-1"}},
	} {
		compare(step.fails, step.args...)
	}

	// A build attaches its log and a trigger queues runs, on both sides.
	localDB, err := store.Open(context.Background(), "", localDir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	seed(t, localDB)
	if err := localDB.Close(); err != nil {
		t.Fatal(err)
	}
	seed(t, remoteDB)
	for _, step := range []struct {
		fails bool
		args  []string
	}{
		{args: []string{"version", "attachments", "basic-linux-1"}},
		{args: []string{"version", "attachments", "basic-linux-1", "-o", "json"}},
		{args: []string{"version", "log", "basic-linux-1"}},
		{fails, []string{"version", "log", "appserver-1"}},
		{args: []string{"runs"}},
		{args: []string{"run", "show", "1"}},
		{args: []string{"run", "cancel", "1"}},
		{fails, []string{"run", "cancel", "1"}}, // cancelled already
		{fails, []string{"run", "cancel", "7"}}, // no such run
		{fails, []string{"run", "cancel", "x"}},
		{args: []string{"run", "show", "1", "-o", "json"}},
		{args: []string{"runs"}},
		// Webhooks last: the local promote above must not have had one to
		// send to (tests touch loopback only).
		{args: []string{"webhook", "add", "http://127.0.0.1:1/hooks/kiln", "--secret-file", secret, "--event", "promoted"}},
		{args: []string{"webhook", "add", "http://127.0.0.1:1/hooks/ci", "--secret-file", secret}},
		{fails, []string{"webhook", "add", "ftp://127.0.0.1/x", "--secret-file", secret}},
		{fails, []string{"webhook", "add", "http://127.0.0.1:1/x", "--secret-file", pk + ".missing"}},
		{args: []string{"webhook", "list"}},
		{args: []string{"webhook", "list", "-o", "json"}},
		{args: []string{"webhook", "remove", "1"}},
		{fails, []string{"webhook", "remove", "1"}}, // gone
		{args: []string{"webhook", "list"}},
		// Revocation through ancestry, last (it changes what the steps
		// above read): scheduled, listed, cancelled, then revoked with
		// appserver-1 built on it, refused twice, and restored.
		{args: []string{"version", "revoke", "basic-linux-1", "--reason", "end of support", "--at", "2099-01-01T00:00:00Z"}},
		{args: []string{"version", "revocations"}},
		{args: []string{"version", "revocations", "-o", "json"}},
		{args: []string{"version", "cancel-revocation", "basic-linux-1"}},
		{fails, []string{"version", "cancel-revocation", "basic-linux-1"}}, // none left
		{fails, []string{"version", "revoke", "basic-linux-1", "--reason", "x", "--at", "2001-01-01T00:00:00Z"}},
		{args: []string{"version", "status", "basic-linux-1", "revoked", "--reason", "CVE-2026-7 in openssl"}},
		{fails, []string{"version", "revoke", "basic-linux-1", "--reason", "again"}},
		{args: []string{"fleet", "exposed", "--revoked"}},
		{fails, []string{"version", "restore", "appserver-1", "--reason", "x"}}, // revoked through basic-linux-1
		{args: []string{"version", "restore", "basic-linux-1", "--reason", "false alarm"}},
		{args: []string{"version", "revoke", "basic-linux-1", "--reason", "CVE-2026-8", "-o", "json"}},
	} {
		compare(step.fails, step.args...)
	}
	// The secret stays on the server: no listing shows it.
	if out, _, _ := run(t, remoteDir, "--server", url, "webhook", "list", "-o", "json"); strings.Contains(out, "0123456789abcdef") {
		t.Errorf("webhook list shows the secret:\n%s", out)
	}
}

// Bad tokens, missing roles and commands that must run here are refused
// with exit 1 and a message that says what to do.
func TestRemoteCLIRefusals(t *testing.T) {
	url, toks, _ := remoteServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	cases := []struct {
		token    string
		args     []string
		contains string
	}{
		{"kiln_" + strings.Repeat("a", 52), []string{"image", "list"}, "token"},
		{"", []string{"image", "list"}, "KILN_TOKEN"},
		{toks[kiln.RoleViewer], []string{"image", "create", "web"}, "builder"},
		{toks[kiln.RoleBuilder], []string{"instance", "register", "--image", "web", "--version", "1"}, "operator"},
		{toks[kiln.RoleAdmin], []string{"build", "estate"}, "`kiln build` runs on the machine with the builder; run it there or without --server"},
		{toks[kiln.RoleAdmin], []string{"instance", "launch", "web-1"}, "without --server"},
		// This server was started without a signing key: verification and
		// key export through it say so (cmd/kiln/remote_verify_test.go
		// covers a server with a key).
		{toks[kiln.RoleAdmin], []string{"version", "verify", "web-1"}, "has no provenance signing key"},
		{toks[kiln.RoleAdmin], []string{"instance", "exec", "web-1", "true"}, "without --server"},
		{toks[kiln.RoleAdmin], []string{"token", "list"}, "not through --server"},
		{toks[kiln.RoleAdmin], []string{"key", "export"}, "has no provenance signing key"},
		{toks[kiln.RoleViewer], []string{"run", "show", "7"}, "not found"}, // a subcommand of a local-only command goes through
		{toks[kiln.RoleBuilder], []string{"advisory", "delete", "DSA-1"}, "needs the operator role"},
		{toks[kiln.RoleOperator], []string{"policy", "set-max-age", "90d", "--env", "prod"}, "needs the admin role"},
		{toks[kiln.RoleOperator], []string{"policy", "delete", "--env", "prod"}, "needs the admin role"},
		{toks[kiln.RoleOperator], []string{"webhook", "list"}, "needs the admin role"},
		{toks[kiln.RoleBuilder], []string{"run", "cancel", "1"}, "needs the operator role"},
		{toks[kiln.RoleAdmin], []string{"webhook", "deliveries"}, "without --server"},
		{toks[kiln.RoleAdmin], []string{"fleet", "mark-lost"}, "without --server"},
	}
	for _, c := range cases {
		t.Setenv("KILN_TOKEN", c.token)
		_, errs, code := run(t, dir, append([]string{"--server", url}, c.args...)...)
		if code != 1 || !strings.Contains(errs, c.contains) {
			t.Errorf("kiln --server %s: exit %d, stderr %q; want exit 1 containing %q", strings.Join(c.args, " "), code, errs, c.contains)
		}
		if c.token != "" && strings.Contains(errs, c.token) {
			t.Errorf("kiln --server %s: the token appears in stderr", strings.Join(c.args, " "))
		}
	}
	// The environment variable works as the flag does.
	t.Setenv("KILN_SERVER", url)
	t.Setenv("KILN_TOKEN", toks[kiln.RoleViewer])
	if _, errs, code := run(t, dir, "image", "create", "web"); code != 1 || !strings.Contains(errs, "builder") {
		t.Errorf("KILN_SERVER: exit %d, stderr %q", code, errs)
	}
}

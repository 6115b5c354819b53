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
func remoteServer(t *testing.T) (string, map[kiln.Role]string) {
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
	ts := httptest.NewServer(api.New(api.Config{Registry: db, AuthCacheTTL: -1}))
	t.Cleanup(ts.Close)
	return ts.URL, toks
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

// The registry and fleet commands give the same output and exit codes
// through --server as on a local database.
func TestRemoteCLISameAsLocal(t *testing.T) {
	url, toks := remoteServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no credentials file but ours
	t.Setenv("KILN_SERVER", "")
	t.Setenv("KILN_TOKEN", toks[kiln.RoleOperator])
	localDir, remoteDir := t.TempDir(), t.TempDir()
	if _, _, err := sign.LoadOrCreateKey(localDir, ""); err != nil { // no "created the key" warning in the comparison
		t.Fatal(err)
	}
	pk := filepath.Join(localDir, "pk.txt")
	if err := os.WriteFile(pk, []byte("base-files 12.4+deb12u5 amd64\nlibssl3 3.0.11-1~deb12u2 amd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	steps := [][]string{
		{"image", "create", "basic-linux", "--description", "Debian base"},
		{"image", "create", "appserver"},
		{"image", "list"},
		{"image", "list", "-o", "json"},
		{"version", "create", "basic-linux", "--semver", "1.0.4", "--packages", pk, "--tag", "team=platform"},
		{"version", "create", "appserver", "--base", "basic-linux-1"},
		{"version", "status", "basic-linux-1", "tested", "--reason", "passed"},
		{"version", "status", "basic-linux-1", "ready"},
		{"version", "list", "basic-linux"},
		{"version", "list", "basic-linux", "-o", "json"},
		{"version", "show", "basic-linux-1"},
		{"version", "show", "basic-linux-1", "-o", "json"},
		{"version", "status", "appserver-1", "ready"}, // refused: not tested
		{"version", "show", "nope-1"},                 // not found
		{"instance", "register", "--image", "basic-linux", "--version", "1", "--name", "web-1", "--env", "prod", "--launched-at", "2026-01-02T03:04:05Z"},
		{"instance", "register", "--image", "appserver", "--version", "1", "--name", "app-1", "--env", "staging", "--launched-at", "2026-01-02T03:04:05Z"},
		{"instance", "register", "--image", "appserver", "--version", "9", "--name", "app-9"}, // unknown version
		{"instance", "list"},
		{"instance", "list", "-o", "json"},
		{"fleet", "report"},
		{"fleet", "report", "--env", "prod", "-o", "json"},
		{"fleet", "stale"},
		{"fleet", "report", "--drill", "basic-linux-1"},
		{"fleet", "exposed", "--fixed-in", "basic-linux-2"},
		{"fleet", "overage", "--max-age", "30d"},
		{"policy", "list"},
		{"instance", "show", "web-1"},
		{"instance", "deregister", "app-1"},
		{"instance", "show", "app-1"}, // gone
		{"version", "tag", "basic-linux-1", "owner=ops"},
		{"version", "history", "basic-linux-1"},
		{"version", "latest", "basic-linux"},
		{"version", "lineage"},
		{"advisory", "add", "DSA-5678-1", "--fixed-in", "basic-linux-2", "--summary", "openssl"},
		{"advisory", "list"},
		{"advisory", "show", "DSA-5678-1"},
		{"fleet", "exposed", "--advisory", "DSA-5678-1"},
		{"promote", "basic-linux-1", "--to", "dev", "--reason", "first"},
		{"promote", "appserver-1", "--to", "dev"}, // refused: not ready
		{"channel", "list"},
		{"runs"},
		{"run", "show", "1"},
	}
	// The steps that fail, in both modes alike.
	refusedSteps := map[string]bool{
		"version status appserver-1 ready":                             true,
		"version show nope-1":                                          true,
		"instance register --image appserver --version 9 --name app-9": true,
		"instance show app-1":                                          true,
		"promote appserver-1 --to dev":                                 true,
		"run show 1":                                                   true,
	}
	for _, args := range steps {
		lout, lerr, lcode := run(t, localDir, args...)
		rout, rerr, rcode := run(t, remoteDir, append([]string{"--server", url}, args...)...)
		name := strings.Join(args, " ")
		if wantFail := refusedSteps[name]; (lcode != 0) != wantFail {
			t.Errorf("kiln %s: exit %d locally (%s); the comparison needs it to %s", name, lcode, lerr, map[bool]string{true: "fail", false: "succeed"}[wantFail])
		}
		if os.Getenv("KILN_DEBUG_REMOTE") != "" {
			t.Logf("kiln %s → %d\n%s%s", strings.Join(args, " "), rcode, rout, rerr)
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
}

// Bad tokens, missing roles and commands that must run here are refused
// with exit 1 and a message that says what to do.
func TestRemoteCLIRefusals(t *testing.T) {
	url, toks := remoteServer(t)
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
		{toks[kiln.RoleAdmin], []string{"service", "list"}, "without --server"},
		{toks[kiln.RoleAdmin], []string{"rollout", "web"}, "without --server"},
		{toks[kiln.RoleAdmin], []string{"token", "list"}, "not through --server"},
		{toks[kiln.RoleAdmin], []string{"key", "export"}, "without --server"},
		{toks[kiln.RoleViewer], []string{"run", "show", "7"}, "not found"}, // a subcommand of a local-only command goes through
		{toks[kiln.RoleAdmin], []string{"advisory", "delete", "DSA-1"}, "without --server"},
		{toks[kiln.RoleAdmin], []string{"policy", "set-max-age", "90d", "--env", "prod"}, "without --server"},
		{toks[kiln.RoleAdmin], []string{"webhook", "list"}, "without --server"},
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

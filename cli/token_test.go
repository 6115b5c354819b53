package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/store"
)

// kilnCmd runs a command line on the SQLite database in dir, as the binary
// would, and returns stdout, stderr and the exit code.
func kilnCmd(t *testing.T, dir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &cli.App{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Open: func(ctx context.Context, cfg cli.Config, logger *slog.Logger) (*cli.Services, error) {
			db, err := store.Open(ctx, cfg.Database, cfg.DataDir, logger, time.Now)
			if err != nil {
				return nil, err
			}
			return &cli.Services{Registry: db, Revoker: db, Tokens: db, Audit: db, Checkpoints: db, DataDir: cfg.DataDir, Close: db.Close}, nil
		}}
	code := app.Run(context.Background(), append([]string{"--data-dir", dir}, args...))
	return out.String(), errb.String(), code
}

func TestTokenCommands(t *testing.T) {
	dir := t.TempDir()
	out, errs, code := kilnCmd(t, dir, "token", "create", "ci", "--role", "builder", "--expires", "30d")
	secret := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(secret, store.TokenPrefix) || strings.Count(out, "\n") != 1 {
		t.Fatalf("create: exit %d, stdout %q, stderr %s", code, out, errs)
	}
	if !strings.Contains(errs, "shown only now") || strings.Contains(errs, secret) {
		t.Errorf("stderr: %s", errs)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"token", "create", "ci", "--role", "viewer"}, "exists already"},
		{[]string{"token", "create", "x", "--role", "root"}, "unknown role"},
		{[]string{"token", "create", "x"}, "role"},
		{[]string{"token", "create", "x", "--role", "viewer", "--expires", "-3d"}, "--expires"},
		{[]string{"token", "revoke", "nope"}, "no token named nope"},
	} {
		if _, errs, code := kilnCmd(t, dir, c.args...); code != 1 || !strings.Contains(errs, c.msg) {
			t.Errorf("%v: exit %d, %s; want 1 and %q", c.args, code, errs, c.msg)
		}
	}
	kilnCmd(t, dir, "token", "create", "web", "--role", "viewer")
	if out, _, code := kilnCmd(t, dir, "token", "revoke", "web"); code != 0 || out != "revoked web\n" {
		t.Fatalf("revoke: %d %q", code, out)
	}
	out, _, _ = kilnCmd(t, dir, "token", "list")
	if !strings.Contains(out, "ci ") || !strings.Contains(out, "builder") || !strings.Contains(out, "revoked") || strings.Contains(out, secret) {
		t.Fatalf("list:\n%s", out)
	}
	out, _, _ = kilnCmd(t, dir, "-o", "json", "token", "list")
	var toks []kiln.Token
	if err := json.Unmarshal([]byte(out), &toks); err != nil || len(toks) != 2 || toks[0].ExpiresAt.IsZero() {
		t.Fatalf("json list: %v %s", err, out)
	}

	// The token works against the database it was made on.
	db, err := store.Open(context.Background(), "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if tok, err := db.Authenticate(context.Background(), secret); err != nil || tok.Name != "ci" {
		t.Fatalf("authenticate: %v %v", tok, err)
	}
}

func TestAuditCommands(t *testing.T) {
	dir := t.TempDir()
	kilnCmd(t, dir, "token", "create", "ci", "--role", "builder")
	kilnCmd(t, dir, "image", "create", "appserver")
	out, errs, code := kilnCmd(t, dir, "audit")
	if code != 0 || !strings.Contains(out, "token.create") || !strings.Contains(out, "image.create") || !strings.Contains(out, "local:") {
		t.Fatalf("audit: %d\n%s%s", code, out, errs)
	}
	out, _, _ = kilnCmd(t, dir, "-o", "json", "audit", "--target", "appserver", "--since", "1h")
	var es []kiln.AuditEntry
	if err := json.Unmarshal([]byte(out), &es); err != nil || len(es) != 1 || es[0].Action != "image.create" || es[0].Source != "local" {
		t.Fatalf("filtered: %v %s", err, out)
	}
	if _, errs, code := kilnCmd(t, dir, "audit", "--since", "yesterday-ish"); code != 1 || !strings.Contains(errs, "--since") {
		t.Fatalf("bad since: %d %s", code, errs)
	}
	out, _, code = kilnCmd(t, dir, "audit", "verify")
	if code != 0 || !strings.Contains(out, "intact: 2 entries") {
		t.Fatalf("verify: %d %s", code, out)
	}
}

// The agent's token never goes on the command line (ps, shell history):
// --token is refused with the way to pass it instead; --token-file works.
func TestAgentTokenNotOnCommandLine(t *testing.T) {
	dir := t.TempDir()
	_, errs, code := kilnCmd(t, dir, "agent", "checkin", "--server", "http://127.0.0.1:1", "--token", "kiln_secret")
	if code == 0 || !strings.Contains(errs, "KILN_TOKEN") || !strings.Contains(errs, "--token-file") || strings.Contains(errs, "kiln_secret") {
		t.Fatalf("--token: exit %d, stderr %q", code, errs)
	}
}

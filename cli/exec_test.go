package cli_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/platform/memory"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/verify"
)

// execPlatform is the in-memory platform with an Exec that records what
// it was asked to run.
type execPlatform struct {
	*memory.Platform
	argv  []string
	stdin string
}

func (p *execPlatform) Exec(_ context.Context, _ string, argv []string, stdio kiln.ExecIO) (int, error) {
	p.argv = argv
	var b bytes.Buffer
	if stdio.Stdin != nil {
		_, _ = b.ReadFrom(stdio.Stdin)
	}
	p.stdin = b.String()
	return 0, nil
}

// TestInstanceExec: an exec is read-only (run through the read-only
// wrapper, without input, audited with its command line, no taint) or
// break-glass (reason required, recorded, tainted); neither is refused.
func TestInstanceExec(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.CreateImage(ctx, &kiln.Image{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "app", Provenance: kiln.Provenance{Artifact: &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateInstance(ctx, &kiln.Instance{ID: "web-1", Name: "web-1", Version: kiln.VersionRef{Image: "app", Number: 1}, Environment: "prod", Platform: "local", State: kiln.InstanceRunning}); err != nil {
		t.Fatal(err)
	}
	plat := &execPlatform{Platform: memory.New()}
	kilnExec := func(args ...string) (string, int) {
		var out, errb bytes.Buffer
		app := &cli.App{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader("rm -rf /\n"),
			Open: func(context.Context, cli.Config, *slog.Logger) (*cli.Services, error) {
				return &cli.Services{Registry: db, Inventory: db, Audit: db, RolloutStore: db, ServiceStore: db, Platform: plat, DataDir: dir, Close: func() error { return nil }}, nil
			}}
		code := app.Run(ctx, append([]string{"--data-dir", dir, "instance", "exec"}, args...))
		return errb.String(), code
	}
	tainted := func() bool {
		in, err := db.FindInstance(ctx, "web-1")
		if err != nil {
			t.Fatal(err)
		}
		return in.Tainted
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"web-1", "--", "sh", "-i"}, "--read-only for a diagnostic"},
		{[]string{"web-1", "--break-glass", "--", "sh", "-i"}, "--reason"},
		{[]string{"web-1", "--read-only", "--break-glass", "--reason", "INC-1 x", "--", "true"}, "not both"},
	} {
		if errs, code := kilnExec(c.args...); code != 1 || !strings.Contains(errs, c.want) || plat.argv != nil {
			t.Errorf("exec %q: exit %d, ran %q, stderr %s; want refused with %q", c.args, code, plat.argv, errs, c.want)
		}
	}

	if errs, code := kilnExec("web-1", "--read-only", "--", "journalctl", "-u", "my app", "-n", "5"); code != 0 {
		t.Fatalf("read-only exec: exit %d, %s", code, errs)
	}
	want := verify.ReadOnlyArgv([]string{"journalctl", "-u", "my app", "-n", "5"})
	if strings.Join(plat.argv, "|") != strings.Join(want, "|") || plat.stdin != "" {
		t.Errorf("read-only exec ran %q with input %q; want %q with none", plat.argv, plat.stdin, want)
	}
	if tainted() {
		t.Error("a read-only exec tainted the instance")
	}
	all, err := db.ListAudit(ctx, kiln.AuditFilter{Target: "instance web-1"})
	var es []*kiln.AuditEntry
	for _, e := range all {
		if strings.HasPrefix(e.Action, "instance.exec") {
			es = append(es, e)
		}
	}
	if err != nil || len(es) != 1 || es[0].Action != "instance.exec.read-only" || es[0].Detail != "journalctl -u 'my app' -n 5" {
		t.Fatalf("audit after the read-only exec: %d entries %v", len(es), err)
	}

	plat.argv = nil
	if errs, code := kilnExec("web-1", "--break-glass", "--reason", "INC-7: stuck queue", "--", "sh", "-i"); code != 0 || !strings.Contains(errs, "now tainted") {
		t.Fatalf("break-glass exec: exit %d, %s", code, errs)
	}
	if strings.Join(plat.argv, " ") != "sh -i" || plat.stdin != "rm -rf /\n" || !tainted() {
		t.Errorf("break-glass exec ran %q with input %q, tainted %v; want sh -i with the terminal's input, tainted", plat.argv, plat.stdin, tainted())
	}
	bg, err := db.ListBreakGlass(ctx, "web-1")
	if err != nil || len(bg) != 1 || bg[0].Reason != "INC-7: stuck queue" {
		t.Errorf("break-glass log: %+v %v", bg, err)
	}
}

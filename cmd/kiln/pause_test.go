package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// compareCLI runs command lines both on a local kiln and through --server.
type compareCLI struct {
	t                   *testing.T
	url                 string
	localDir, remoteDir string
}

func newCompareCLI(t *testing.T, url string) *compareCLI {
	t.Helper()
	c := &compareCLI{t: t, url: url, localDir: t.TempDir(), remoteDir: t.TempDir()}
	if _, _, err := sign.LoadOrCreateKey(c.localDir, ""); err != nil { // no "created the key" warning in the comparison
		t.Fatal(err)
	}
	return c
}

// run runs args on the local kiln in localDir and through --server url
// (with its own data directory), and fails t when the exit codes or the
// normalized outputs differ, or when the exit code is not want. It
// returns the local stdout and stderr.
func (c *compareCLI) run(want int, args ...string) (string, string) {
	t := c.t
	t.Helper()
	lout, lerr, lcode := run(t, c.localDir, args...)
	rout, rerr, rcode := run(t, c.remoteDir, append([]string{"--server", c.url}, args...)...)
	name := strings.Join(args, " ")
	if lcode != want {
		t.Errorf("kiln %s: exit %d locally, want %d\n%s%s", name, lcode, want, lout, lerr)
	}
	if rcode != lcode {
		t.Errorf("kiln %s: exit %d locally, %d through --server (stderr %q / %q)", name, lcode, rcode, lerr, rerr)
	}
	if d := cmp.Diff(normalize(lout), normalize(rout)); d != "" {
		t.Errorf("kiln %s: output differs (-local +server):\n%s", name, d)
	}
	if d := cmp.Diff(normalize(lerr), normalize(rerr)); d != "" {
		t.Errorf("kiln %s: stderr differs (-local +server):\n%s", name, d)
	}
	return lout, lerr
}

// TestPauseCommands: `kiln service|env pause|resume` and `kiln env pauses`
// on a local kiln and through --server give the same output and exit
// codes: a pause is listed with who paused it and why, and resumed; a
// pause without a reason, of a service that does not exist, or a resume
// of what is not paused fails and says why; each pause and resume is
// audited; a viewer may list the pauses but not pause.
func TestPauseCommands(t *testing.T) {
	url, toks, remoteDB := remoteServer(t)
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("KILN_SERVER", "")
	t.Setenv("KILN_TOKEN", toks[kiln.RoleOperator])
	c := newCompareCLI(t, url)
	ctx := context.Background()

	// The same service on both sides (created in the stores: creating one
	// through the API needs kiln serve's rollout host).
	c.run(0, "image", "create", "appserver")
	localDB, err := store.Open(ctx, "", c.localDir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer localDB.Close()
	for _, db := range []*store.DB{localDB, remoteDB} {
		if err := db.CreateService(ctx, &kiln.Service{Name: "web", Image: "appserver", Environment: "prod", Replicas: 1, Listen: "127.0.0.1:18099"}); err != nil {
			t.Fatal(err)
		}
	}

	if out, _ := c.run(0, "env", "pauses"); out != "nothing is paused\n" {
		t.Errorf("env pauses with nothing paused: %q", out)
	}
	out, _ := c.run(0, "env", "pause", "prod", "--reason", "CHG-42: release freeze")
	if want := "environment prod paused by ACTOR: CHG-42: release freeze; resume with `kiln env resume prod`\n"; normalize(out) != want {
		t.Errorf("env pause: %q, want %q", normalize(out), want)
	}
	out, _ = c.run(0, "service", "pause", "web", "--reason", "INC-9: investigating 5xx")
	if want := "service web paused by ACTOR: INC-9: investigating 5xx; resume with `kiln service resume web`\n"; normalize(out) != want {
		t.Errorf("service pause: %q, want %q", normalize(out), want)
	}
	// Pausing again replaces the reason.
	c.run(0, "env", "pause", "prod", "--reason", "CHG-43: longer freeze")
	for _, f := range []struct {
		args []string
		errs string
	}{
		{[]string{"env", "pause", "staging"}, "--reason"},
		{[]string{"env", "pause", "staging", "--reason", "x"}, "say why"},
		{[]string{"service", "pause", "nosuch", "--reason", "INC-10: no such service"}, `no service is named "nosuch"`},
		{[]string{"service", "pause"}, "service name"},
		{[]string{"service", "resume", "api"}, "service api is not paused"},
		{[]string{"env", "resume", "staging"}, "environment staging is not paused"},
	} {
		if _, errs := c.run(1, f.args...); !strings.Contains(errs, f.errs) {
			t.Errorf("kiln %s: stderr %q, want it to contain %q", strings.Join(f.args, " "), errs, f.errs)
		}
	}
	out, _ = c.run(0, "env", "pauses")
	lines := strings.Split(strings.TrimSpace(normalize(out)), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "KIND NAME BY SINCE REASON") ||
		lines[1] != "environment prod ACTOR TIMEZ CHG-43: longer freeze" || lines[2] != "service web ACTOR TIMEZ INC-9: investigating 5xx" {
		t.Errorf("env pauses:\n%s", out)
	}
	out, _ = c.run(0, "env", "pauses", "-o", "json")
	var ps []kiln.Pause
	if err := json.Unmarshal([]byte(out), &ps); err != nil || len(ps) != 2 {
		t.Fatalf("env pauses -o json: %v\n%s", err, out)
	}
	for _, p := range ps {
		if !strings.HasPrefix(p.Actor, "local:") || p.At.IsZero() {
			t.Errorf("local pause %s %s: by %q at %s; want the local user and a time", p.Kind, p.Name, p.Actor, p.At)
		}
	}
	rps, err := remoteDB.ListPauses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rps {
		if p.Actor != "token:operator" {
			t.Errorf("server's pause %s %s: by %q; want the operator token", p.Kind, p.Name, p.Actor)
		}
	}

	// A viewer reads the pauses but may not pause or resume.
	t.Setenv("KILN_TOKEN", toks[kiln.RoleViewer])
	if _, errs, code := run(t, c.remoteDir, "--server", url, "env", "pauses"); code != 0 {
		t.Errorf("viewer: env pauses: exit %d: %s", code, errs)
	}
	for _, args := range [][]string{{"env", "pause", "dev", "--reason", "CHG-44: freeze"}, {"env", "resume", "prod"}, {"service", "resume", "web"}} {
		if _, errs, code := run(t, c.remoteDir, append([]string{"--server", url}, args...)...); code != 1 || !strings.Contains(errs, "operator") {
			t.Errorf("viewer: kiln %s: exit %d, stderr %q; want exit 1 naming the operator role", strings.Join(args, " "), code, errs)
		}
	}
	t.Setenv("KILN_TOKEN", toks[kiln.RoleOperator])

	if out, _ := c.run(0, "service", "resume", "web"); out != "service web resumed\n" {
		t.Errorf("service resume: %q", out)
	}
	c.run(0, "env", "resume", "prod")
	if out, _ := c.run(0, "env", "pauses"); out != "nothing is paused\n" {
		t.Errorf("env pauses after resuming both: %q", out)
	}

	// Each pause and resume is in the audit log, with its reason.
	for name, db := range map[string]*store.DB{"local": localDB, "server": remoteDB} {
		es, err := db.ListAudit(ctx, kiln.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range es {
			if strings.HasSuffix(e.Action, ".pause") || strings.HasSuffix(e.Action, ".resume") {
				got = append(got, e.Action+" "+e.Target+" "+e.Detail)
			}
		}
		want := []string{
			"environment.pause environment prod CHG-42: release freeze",
			"service.pause service web INC-9: investigating 5xx",
			"environment.pause environment prod CHG-43: longer freeze",
			"service.resume service web ",
			"environment.resume environment prod ",
		}
		if len(got) > 0 && got[0] != want[0] { // newest first
			for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
				got[i], got[j] = got[j], got[i]
			}
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("%s audit log of pauses (-want +got):\n%s", name, d)
		}
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/cli"
)

// run executes one kiln command line against dataDir and returns stdout,
// stderr and the exit code, exactly as the binary would.
func run(t testing.TB, dataDir string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &cli.App{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), Open: openServices, Serve: serve, VerifyImage: verifyImage}
	code := app.Run(context.Background(), append([]string{"--data-dir", dataDir}, args...))
	return out.String(), errb.String(), code
}

func mustRun(t testing.TB, dataDir string, args ...string) string {
	t.Helper()
	out, errs, code := run(t, dataDir, args...)
	if code != 0 {
		t.Fatalf("kiln %s: exit %d: %s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestCLIRegistryTour(t *testing.T) {
	dir := t.TempDir()
	for _, img := range []string{"basic-linux", "appserver", "container-node"} {
		mustRun(t, dir, "image", "create", img)
	}
	pk := filepath.Join(dir, "pk.txt")
	if err := os.WriteFile(pk, []byte("# dpkg-query output\nbase-files 12.4+deb12u5 amd64\nlibssl3 3.0.11-1~deb12u2 amd64\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSpace(mustRun(t, dir, "version", "create", "basic-linux", "--semver", "1.0.4",
		"--packages", pk, "--tag", "team=platform",
		"--source", "origin=debian:bookworm@sha256:"+strings.Repeat("ab", 32)))
	if name != "basic-linux-1" {
		t.Fatalf("first version name = %q, want basic-linux-1", name)
	}
	mustRun(t, dir, "version", "status", name, "tested", "--reason", "passed")
	mustRun(t, dir, "version", "status", name, "ready")
	app := strings.TrimSpace(mustRun(t, dir, "version", "create", "appserver", "--base", name))
	if app != "appserver-1" {
		t.Fatalf("appserver version = %q", app)
	}

	var v struct {
		Name       string            `json:"name"`
		Status     string            `json:"status"`
		SemVer     string            `json:"semver"`
		Tags       map[string]string `json:"tags"`
		Provenance struct {
			Packages []struct{ Name, Version, Architecture string } `json:"packages"`
		} `json:"provenance"`
		History []struct{ Field, From, To, Reason string } `json:"history"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, dir, "version", "show", name, "-o", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.Status != "ready" || v.Tags["Release_Status"] != "ready" || v.Tags["Name"] != "basic-linux" || v.Tags["Version"] != "1" || v.Tags["team"] != "platform" {
		t.Errorf("show: status %q tags %v", v.Status, v.Tags)
	}
	if len(v.Provenance.Packages) != 2 || v.Provenance.Packages[1].Version != "3.0.11-1~deb12u2" {
		t.Errorf("packages = %+v", v.Provenance.Packages)
	}
	var statuses []string
	for _, h := range v.History {
		if h.Field == "status" {
			statuses = append(statuses, h.From+"→"+h.To+":"+h.Reason)
		}
	}
	if strings.Join(statuses, " ") != "→candidate:created candidate→tested:passed tested→ready:" {
		t.Errorf("status history = %v", statuses)
	}

	if got := strings.TrimSpace(mustRun(t, dir, "version", "latest", "basic-linux", "--status", "ready")); got != name {
		t.Errorf("latest ready = %q", got)
	}
	list := mustRun(t, dir, "version", "list", "basic-linux", "--tag", "team=platform")
	if !strings.Contains(list, "basic-linux-1") || !strings.Contains(list, "1.0.4-") {
		t.Errorf("list output:\n%s", list)
	}
	lin := mustRun(t, dir, "version", "lineage")
	if !strings.Contains(lin, "appserver-1") || !strings.Contains(lin, "basic-linux-1") {
		t.Errorf("lineage output:\n%s", lin)
	}
}

func TestCLIExitCodes(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "image", "create", "appserver")
	mustRun(t, dir, "version", "create", "appserver")
	cases := []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"image", "create", "appserver"}, 1, "appserver"},
		{[]string{"image", "create", "Bad_Name"}, 1, "lowercase"},
		{[]string{"version", "show", "nope-1"}, 1, "nope"},
		{[]string{"version", "show", "appserver"}, 1, "IMAGE-N"},
		{[]string{"version", "status", "appserver-1", "ready"}, 1, "tested"},
		{[]string{"version", "status", "appserver-1", "bogus"}, 1, "use one of"},
		{[]string{"version", "create", "appserver", "--tag", "Name=x"}, 1, "maintained by kiln"},
		{[]string{"version", "create", "appserver", "--method", "reheat"}, 1, "--parent"},
		{[]string{"version", "create", "appserver", "--source", "origin=x@sha256:zz"}, 1, "64 lowercase hex"},
		{[]string{"version", "list", "appserver", "-o", "yaml"}, 1, "table or json"},
		{[]string{"version", "nosuch"}, 1, ""},
		{[]string{"image", "create"}, 1, "image name"},
	}
	for _, c := range cases {
		_, errs, code := run(t, dir, c.args...)
		if code != c.code || !strings.Contains(errs, c.contains) {
			t.Errorf("kiln %s: exit %d, stderr %q; want exit %d containing %q", strings.Join(c.args, " "), code, errs, c.code, c.contains)
		}
	}
	// The failed calls above must not have changed anything.
	out := mustRun(t, dir, "version", "list", "appserver", "-o", "json")
	var vs []map[string]any
	if err := json.Unmarshal([]byte(out), &vs); err != nil || len(vs) != 1 || vs[0]["status"] != "candidate" {
		t.Errorf("after failed calls: %s (%v)", out, err)
	}
}

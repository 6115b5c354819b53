package pipeline_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/fixtures"
	"github.com/kiln-project/kiln/verify"
)

// gossFixtureTree lays the shared goss fixtures out as in goss's repository
// (integration-tests__goss__vars.yaml → integration-tests/goss/vars.yaml)
// so that their includes resolve; it returns the root.
func gossFixtureTree(t *testing.T) string {
	t.Helper()
	dir := fixtures.Path(t, "goss")
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if len(files) == 0 {
		t.Fatalf("no goss fixtures in %s", dir)
	}
	root := t.TempDir()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root, filepath.FromSlash(strings.ReplaceAll(filepath.Base(f), "__", "/")))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestGossFixturesOnInstance runs goss's own Debian test files, rendered
// as goss's integration test renders them, and kiln's checks of the addr,
// dns, interface and mount resources, inside a booted instance of the test
// image (Debian bookworm with busybox httpd on port 80, not bullseye with
// apache2). Every check runs; the bullseye/apache2 expectations fail and
// the rest pass, as goss would report on this machine.
func TestGossFixturesOnInstance(t *testing.T) {
	root := gossFixtureTree(t)
	e := newEnv(t)
	ctx := context.Background()
	ref := kiln.VersionRef{Image: "web", Number: 1}
	v, err := e.reg.FindVersion(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.plat.Launch(ctx, kiln.LaunchSpec{ID: "goss", Name: "goss", Version: ref, Artifact: *v.Provenance.Artifact}); err != nil {
		t.Fatal(err)
	}
	defer e.plat.Destroy(context.WithoutCancel(ctx), "goss")
	// The minbase image has no /etc/hosts; give the dns checks a name.
	if code, err := e.plat.Exec(ctx, "goss", []string{"sh", "-c", "echo '192.0.2.7 kiln-test-host' >> /etc/hosts"}, kiln.ExecIO{}); err != nil || code != 0 {
		t.Fatalf("write /etc/hosts: exit %d, %v", code, err)
	}
	exec := verify.InstanceExecutor{Platform: e.plat, ID: "goss"}

	t.Setenv("OS", "bullseye")
	vars, err := verify.LoadVars([]string{filepath.Join(root, "integration-tests/goss/vars.yaml")}, "{inline: bar, overwrite: bar}", "--vars-inline")
	if err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, s *verify.Suite) map[string]verify.Result {
		t.Helper()
		rep, err := verify.Run(ctx, exec, s)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_ = (verify.Text{}).Write(&b, rep)
		t.Logf("report:\n%s", &b)
		out := map[string]verify.Result{}
		for _, r := range rep.Results {
			if strings.Contains(r.Error, "not supported") {
				t.Errorf("%s %s %s: %s", r.Type, r.ID, r.Property, r.Error)
			}
			out[r.Type+" "+r.ID+" "+r.Property] = r
		}
		return out
	}
	expect := func(t *testing.T, got map[string]verify.Result, outcome verify.Outcome, keys ...string) {
		t.Helper()
		for _, k := range keys {
			r, ok := got[k]
			switch {
			case !ok:
				t.Errorf("no result for %s", k)
			case r.Outcome != outcome:
				t.Errorf("%s: %s, want %s (expected %q, found %q, error %q)", k, r.Outcome, outcome, r.Expected, r.Found, r.Error)
			}
		}
	}

	t.Run("bullseye/goss.yaml", func(t *testing.T) {
		s, err := verify.ParseFileWith(filepath.Join(root, "integration-tests/goss/bullseye/goss.yaml"), verify.ParseOptions{Vars: vars})
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, s)
		expect(t, got, verify.Pass,
			"service autofs enabled", "service autofs running", "service foobar enabled", "service foobar running",
			"user www-data exists", "user www-data uid", "user www-data gid", "user www-data groups", "user www-data home",
			"group www-data gid", "user root exists", "user foobar exists", "group foobar exists",
			"addr tcp://127.0.0.1:80 reachable", "addr tcp://httpbin:22 reachable", "addr tcp://httpbin:999 reachable",
			"command hello world stdout", "command includetest exit-status", "command echo 'hi' stdout",
			"command foobar exit-status", "command foobar stderr", "command command-override exit-status",
			"file /etc/passwd mode", "file /etc/passwd contents", "file /etc/group owner", "file ~root mode",
			"file /dev/random filetype", "file /tmp/goss/foobar exists",
			"package foobar installed", "process foobar running", "port tcp:9999 listening", "kernel-param kernel.ostype value",
			"mount / exists", "mount / usage", "mount /dev exists", "mount /dev filesystem",
			"matching has_substr matches", "matching has_2 matches", "matching has_foo_bar_and_baz matches",
			"matching semver matches", "matching semver2 matches", "matching vars_inline_simple matches",
			"matching vars_inline_overwrite matches", "matching sping_basic matches")
		expect(t, got, verify.Skip, "command commandskip exit-status", "service skippable running", "file /does/not/exist contents")
		// What makes it bullseye with apache2, a network with httpbin and a
		// DNS server on 127.0.0.1:8053: not this machine.
		expect(t, got, verify.Fail,
			"package apache2 installed", "package apache2 versions", "service apache2 enabled", "service apache2 running",
			"process apache2 running", "port tcp:80 listening", "service dnsmasq running",
			"addr tcp://httpbin:80 reachable", "file /goss/hellogoss.txt exists", "file /pipe exists",
			"dns MX:dnstest.io resolvable", "dns CAA:dnstest.io resolvable",
			"http http://httpbin/headers status", "interface eth0 exists")
	})

	t.Run("bullseye/goss-expected.yaml", func(t *testing.T) {
		s, err := verify.ParseFileWith(filepath.Join(root, "integration-tests/goss/bullseye/goss-expected.yaml"), verify.ParseOptions{Vars: vars})
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, s)
		expect(t, got, verify.Pass, "file /etc/passwd owner", "user www-data shell", "addr udp://127.0.0.1:8053 reachable",
			"command foobar stderr", "mount /dev source", "package vim-tiny installed")
		expect(t, got, verify.Fail, "package apache2 installed", "addr tcp://httpbin:80 reachable", "dns PTR:54.243.154.1 resolvable")
	})

	t.Run("new resources", func(t *testing.T) {
		s, err := verify.Parse("kiln.yaml", []byte(`
addr:
  tcp://127.0.0.1:80: {reachable: true}
  tcp://[::1]:80: {reachable: true}
  tcp://127.0.0.1:81: {reachable: false, timeout: 500}
dns:
  kiln-test-host: {resolvable: true, addrs: [192.0.2.7]}
  kiln-no-such-host: {resolvable: false}
interface:
  lo: {exists: true, mtu: 65536, addrs: {contain-element: 127.0.0.1/8}}
  kiln-none0: {exists: false}
mount:
  /: {exists: true, usage: {and: [{gt: 0}, {le: 100}]}}
  /proc: {exists: true, filesystem: proc, source: proc, opts: {contain-element: rw}}
  /kiln/none: {exists: false}
`))
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, s)
		for k, r := range got {
			if r.Outcome != verify.Pass {
				t.Errorf("%s: %s (expected %q, found %q, error %q)", k, r.Outcome, r.Expected, r.Found, r.Error)
			}
		}
	})
}

package main

import (
	"slices"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
)

// The platforms wired are the ones definitions, services and
// `--platform` accept by name, the default first.
func TestPlatformNames(t *testing.T) {
	g := &graph{}
	got := g.platforms(nil, nil).Names()
	if !slices.Equal(got, kiln.LaunchPlatforms) {
		t.Fatalf("wired platforms %v, kiln.LaunchPlatforms %v", got, kiln.LaunchPlatforms)
	}
	if _, err := g.platforms(nil, nil).Get("vm"); err == nil {
		t.Fatal("a VM platform without an artifact store opened")
	}
}

// An unknown platform is refused with the names kiln knows, before
// anything is launched or recorded.
func TestCLIPlatformRefusals(t *testing.T) {
	dir := t.TempDir()
	mustRun(t, dir, "image", "create", "appserver")
	for _, args := range [][]string{
		{"instance", "launch", "appserver-1", "--platform", "xen"},
		{"test", "appserver-1", "--platform", "xen"},
		{"service", "create", "web", "--image", "appserver", "--env", "prod", "--port", "127.0.0.1:18080", "--platform", "xen", "--no-start"},
	} {
		_, errs, code := run(t, dir, args...)
		if code == 0 || !strings.Contains(errs, `unknown platform "xen"`) || !strings.Contains(errs, "local or vm") {
			t.Errorf("kiln %s: exit %d, stderr %q; want the unknown platform named", strings.Join(args, " "), code, errs)
		}
	}
	if out := mustRun(t, dir, "service", "list"); strings.Contains(out, "web") {
		t.Errorf("a service with an unknown platform was recorded: %s", out)
	}
}

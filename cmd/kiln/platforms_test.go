package main

import (
	"slices"
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

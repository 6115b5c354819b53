package bake

import (
	"strings"
	"testing"
)

func TestBootstrapArgsEatMyData(t *testing.T) {
	b := &Bootstrap{Suite: "bookworm", Mirror: "http://m", UnsafeIO: true, EatMyData: "/usr/lib/x86_64-linux-gnu/libeatmydata.so.1"}
	args := b.Args("/t", "")
	var extract, customize []string
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "--extract-hook="):
			extract = append(extract, a)
		case strings.HasPrefix(a, "--customize-hook="):
			customize = append(customize, a)
		}
	}
	if len(extract) != 1 || !strings.Contains(extract[0], "'/usr/lib/x86_64-linux-gnu/libeatmydata.so.1'") || !strings.Contains(extract[0], "dpkg.distrib") {
		t.Fatalf("extract hooks %q", extract)
	}
	if len(customize) == 0 || !strings.Contains(customize[0], "dpkg.distrib") {
		t.Fatalf("the first customize hook must undo the wrapper before the others see the image: %q", customize)
	}
	if plain := strings.Join((&Bootstrap{Suite: "bookworm", Mirror: "http://m"}).Args("/t", ""), "\n"); strings.Contains(plain, "eatmydata") {
		t.Errorf("a bootstrap without EatMyData (the raw benchmark's) has it:\n%s", plain)
	}
}

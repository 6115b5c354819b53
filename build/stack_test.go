package build

import (
	"path/filepath"
	"strings"
	"testing"
)

// A reheat chain stacks two layers per generation; past what one overlay
// mount takes, the build must start from the parent's artifact instead of
// failing to mount.
func TestStackFits(t *testing.T) {
	c, err := newCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := &run{cache: c, steps: []*step{{name: "apt"}}}
	key := strings.Repeat("a", 64)
	stack := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = key
		}
		return s
	}
	if !r.stackFits(stack(4)) {
		t.Errorf("a 4-layer parent does not fit")
	}
	if r.stackFits(nil) {
		t.Errorf("an empty stack fits")
	}
	// Find the deepest stack that fits and check the mount options it
	// makes stay under a page with room for upper and work directories.
	n := 1
	for r.stackFits(stack(n + 1)) {
		n++
	}
	if n < 16 {
		t.Errorf("only %d layers fit; reheats would unpack the artifact too often", n)
	}
	trees := make([]string, n+len(r.steps)+1)
	for i := range trees {
		trees[i] = c.tree(key)
	}
	opts := "lowerdir=" + strings.Join(trees, ":") + ",upperdir=" + filepath.Join(c.dir, "x", "upper") + ",workdir=" + filepath.Join(c.dir, "x", "work") +
		",redirect_dir=off,metacopy=off,index=off,xino=off"
	if len(opts) >= 4096 {
		t.Errorf("%d stacked layers make %d bytes of mount options; the kernel takes less than 4096", n, len(opts))
	}
}

// A build that could not record a hold must not use the layers: prune
// could remove them under it.
func TestHoldFailureStopsTheBuild(t *testing.T) {
	data := t.TempDir()
	c, err := newCache(data)
	if err != nil {
		t.Fatal(err)
	}
	// The hold list is in a directory that does not exist: writing fails.
	c.holds, c.held = filepath.Join(data, "missing", "holds"), map[string]bool{}
	if c.tree(strings.Repeat("b", 64)); c.holdFailure() == nil {
		t.Fatal("a failed hold was not reported")
	}
	if err := c.holdFailure(); !strings.Contains(err.Error(), "kiln cache prune") {
		t.Errorf("hold failure %q does not say why it matters", err)
	}
}

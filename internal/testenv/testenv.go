// Package testenv holds what kiln's integration tests share: the rule that
// a test needing root or a system tool skips with the reason on a laptop
// but fails under CI=true, a TestMain that lets the test binary play
// kiln's hidden roles (instance supervisor, server-test probe), and the
// small bootable test image baked once per machine. Only tests import it.
package testenv

import (
	"context"
	"fmt"
	"github.com/kiln-project/kiln/internal/ci"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/kiln-project/kiln/platform/local"
	"github.com/kiln-project/kiln/platform/platformtest"
	"github.com/kiln-project/kiln/platform/vm"
	"github.com/kiln-project/kiln/platform/vm/disk"
	"github.com/kiln-project/kiln/verify"
)

// InstanceTools are what booting local instances needs.
var InstanceTools = []string{"systemd-nspawn", "mmdebstrap", "nsenter", "tar"}

// Require skips t (or fails it when CI=true) unless it runs as root and
// every tool is on PATH. what names the test for the message.
func Require(t testing.TB, what string, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil && why == "" {
			why = "needs " + tool
		}
	}
	if why != "" {
		ci.SkipOrFail(t, what+" "+why)
	}
}

// Main runs the tests, or, when the test binary was started as one of
// kiln's hidden commands (by the local platform or inside an instance),
// plays that role as the kiln binary would.
func Main(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "__supervise":
			os.Exit(local.SupervisorMain(os.Args[2:]))
		case "__vm-supervise":
			os.Exit(vm.SupervisorMain(os.Args[2:]))
		case disk.AgentCommand:
			os.Exit(vm.AgentMain(os.Args[2:]))
		case "probe":
			if err := verify.RunProbeMain(context.Background(), os.Stdin, os.Stdout); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// CacheDir is where baked test images are kept across test runs.
func CacheDir() string { return filepath.Join(os.TempDir(), "kiln-test-cache") }

var image struct {
	once sync.Once
	path string
	err  error
}

// Image returns the path of the small bootable test image (platformtest),
// baking it on first use; it requires what booting instances requires.
func Image(t testing.TB, what string) string {
	t.Helper()
	Require(t, what, InstanceTools...)
	image.once.Do(func() { image.path, image.err = platformtest.BakeImage(context.Background(), CacheDir()) })
	if image.err != nil {
		t.Fatal(image.err)
	}
	return image.path
}

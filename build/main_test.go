package build

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/platform/vm"
	"github.com/kiln-project/kiln/platform/vm/disk"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
	"github.com/kiln-project/kiln/verify"
)

// The integration tests share one data directory (so the minbase
// bootstrap is baked once per test run and the step cache is warm for the
// later tests) and one SQLite registry in it.
var shared struct {
	dataDir string
	reg     *store.DB
	arts    *artifact.Store
	signer  *sign.Signer
}

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(buildChild())
	}
	// TestDiskImageBuild installs this test binary as the image's kiln:
	// it plays the VM supervisor on the host and the guest agent and the
	// server-test probe inside the VM, as the kiln binary would.
	if len(os.Args) > 1 {
		switch os.Args[1] {
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
	dir, err := os.MkdirTemp("", "kiln-build-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dataDir = dir
	code := m.Run()
	if shared.reg != nil {
		shared.reg.Close()
	}
	arts, err := artifact.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
	} else if _, err := Cleanup(context.Background(), dir, arts, nil); err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// needBuilder skips (fails under CI=true) without root, mmdebstrap or
// systemd-nspawn, and returns a Builder on the shared data directory.
func needBuilder(t *testing.T) *Builder {
	t.Helper()
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "root"
	case !onPath("mmdebstrap"):
		missing = "mmdebstrap (apt-get install mmdebstrap)"
	case !onPath("systemd-nspawn"):
		missing = "systemd-nspawn (apt-get install systemd-container)"
	}
	if missing != "" {
		ci.SkipOrFail(t, "building images needs "+missing)
	}
	ctx := context.Background()
	if shared.reg == nil {
		reg, err := store.Open(ctx, "", shared.dataDir, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		arts, err := artifact.Open(shared.dataDir)
		if err != nil {
			t.Fatal(err)
		}
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		shared.reg, shared.arts, shared.signer = reg, arts, sign.NewSigner(key)
	}
	return &Builder{Registry: shared.reg, Artifacts: shared.arts, DataDir: shared.dataDir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), SBOM: shared.signer}
}

func onPath(name string) bool { _, err := exec.LookPath(name); return err == nil }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func mirror() string {
	if m := os.Getenv("KILN_TEST_MIRROR"); m != "" {
		return m
	}
	return "http://deb.debian.org/debian"
}

// estate writes files (name → content) into a new directory and loads it.
func estate(t *testing.T, dir string, files map[string]string) *definition.Estate {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		content = strings.ReplaceAll(content, "MIRROR", mirror())
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	est, diags := definition.Load(dir, definition.Options{})
	if diags.HasErrors() {
		t.Fatalf("load estate: %s", definition.FormatDiagnostics(diags))
	}
	return est
}

// debianBlock is the minbase bookworm every test image starts from, so the
// bootstrap layer is shared through the step cache.
const debianBlock = `
  debian {
    suite      = "bookworm"
    mirror     = "MIRROR"
    variant    = "minbase"
    components = ["main"]
  }
`

func build(t *testing.T, b *Builder, est *definition.Estate, name string, opts Options) *Result {
	t.Helper()
	opts.Progress = testWriter{t}
	res, err := b.Build(context.Background(), est, est.Images[name], opts)
	if err != nil {
		t.Fatalf("build %s: %v\nlog:\n%s", name, err, res.Log)
	}
	return res
}

func hasPackage(v *kiln.Version, name string) bool {
	for _, p := range v.Provenance.Packages {
		if p.Name == name {
			return true
		}
	}
	return false
}

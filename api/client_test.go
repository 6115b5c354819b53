package api_test

import (
	"bytes"
	"context"
	"github.com/kiln-project/kiln/internal/ci"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// The generator and the runtime its clients import, at the versions the
// client test pins (docs/DEPENDENCIES.md). They are fetched through the Go
// module proxy into the module cache, and `go run` keeps the built
// generator in the build cache: only the first run downloads and builds.
// Neither is a dependency of kiln's own module.
const (
	oapiCodegen = "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2"
	oapiRuntime = "github.com/oapi-codegen/runtime@v1.9.0"
)

// A client generated from the served 3.0 document, with a mainstream
// generator, works against a live server: it creates an image, registers a
// version, reads it back and the fleet report, and gets the documented
// 403 with a viewer token and 401 without one. The generated code and a
// small driver (testdata/client/main.go) are built in a module of their
// own in a temporary directory; kiln's go.mod is untouched.
func TestGeneratedClient(t *testing.T) {
	if testing.Short() {
		ci.SkipOrFail(t, "builds a generated client: not in -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		ci.SkipOrFail(t, "no go command on PATH to build the generated client")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e := newAuthEnv(t, slog.New(slog.DiscardHandler))

	dir := t.TempDir()
	doc := get(t, e.ts.URL+"/openapi-3.0.json")
	driver, err := os.ReadFile(filepath.Join("testdata", "client", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"openapi.json": doc,
		"go.mod":       []byte("module kilnclienttest\n\ngo 1.24\n"),
		"main.go":      driver,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "kilnclient"), 0o755); err != nil {
		t.Fatal(err)
	}
	gocmd := func(env []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), append([]string{"GOWORK=off", "GOFLAGS=-mod=mod"}, env...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	// Fetching the generator and the runtime needs the module proxy (or a
	// warm module cache); without them there is nothing to test with.
	if out, err := gocmd(nil, "get", oapiRuntime); err != nil {
		ci.SkipOrFail(t, "cannot fetch "+oapiRuntime+" (no module proxy?): "+out)
	}
	if out, err := gocmd(nil, "mod", "download", "-json", strings.Replace(oapiCodegen, "/cmd/oapi-codegen", "", 1)); err != nil {
		ci.SkipOrFail(t, "cannot fetch "+oapiCodegen+" (no module proxy?): "+out)
	}
	// From here on a failure is the document's or the client's.
	if out, err := gocmd(nil, "run", oapiCodegen, "-generate", "types,client", "-package", "kilnclient",
		"-o", filepath.Join("kilnclient", "client.gen.go"), "openapi.json"); err != nil {
		t.Fatalf("oapi-codegen cannot generate a client from /openapi-3.0.json: %v\n%s", err, out)
	}
	if out, err := gocmd(nil, "mod", "tidy"); err != nil {
		t.Fatalf("go mod tidy in the client module: %v\n%s", err, out)
	}
	out, err := gocmd([]string{"KILN_URL=" + e.ts.URL, "KILN_BUILDER=" + e.tokens[kiln.RoleBuilder],
		"KILN_VIEWER=" + e.tokens[kiln.RoleViewer]}, "run", ".")
	if err != nil || !strings.Contains(out, "generated client: ok") {
		t.Fatalf("the generated client failed against a live server: %v\n%s", err, out)
	}
	// What the client did is in the database.
	v, err := e.db.FindVersion(context.Background(), kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil || v.Status != kiln.StatusCandidate {
		t.Fatalf("version recorded through the generated client: %+v, %v", v, err)
	}
}

// get fetches url without credentials and fails the test unless it is 200.
func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, b)
	}
	return b
}

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/testenv"
)

// `kiln instance launch` refuses a version whose recorded artifact is not
// the one its signed provenance names (someone with write access to the
// database pointed it at another artifact), before anything boots.
func TestLaunchRefusesTamperedArtifact(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(t.TempDir(), "image.tar")
	if err := os.WriteFile(img, []byte("not a real image"), 0o644); err != nil {
		t.Fatal(err)
	}
	db, _ := seedRollout(t, dir, []string{img})
	v, err := db.FindVersion(context.Background(), kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	testenv.SwapArtifact(t, dir, v.Provenance.Artifact.Digest, "sha256:"+strings.Repeat("cd", 32))
	_, errs, code := run(t, dir, "instance", "launch", "appserver-1", "--name", "tampered")
	if code != 1 || !strings.Contains(errs, "differs from the registry") || !strings.Contains(errs, "do not launch it") {
		t.Fatalf("launch of a swapped artifact: exit %d %q; want exit 1 saying the record changed after signing", code, errs)
	}
	if out := mustRun(t, dir, "instance", "list", "-o", "json"); strings.Contains(out, "tampered") {
		t.Errorf("the refused instance was recorded: %s", out)
	}
}

package cli_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/store"
)

func TestVersionRebuildRefusesAndShow(t *testing.T) {
	dir := t.TempDir()
	est := t.TempDir()
	if err := os.WriteFile(filepath.Join(est, "web.kiln.hcl"), []byte(`image "web" {
  debian {
    suite  = "bookworm"
    mirror = "http://127.0.0.1:9/debian"
  }
}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := kiln.WithActor(context.Background(), "local:test")
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	art := &kiln.Artifact{Ref: "local", Digest: "sha256:" + strings.Repeat("c", 64), Size: 1}
	old, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Method: kiln.MethodFresh, Artifact: art}})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "web", Provenance: kiln.Provenance{Method: kiln.MethodFresh, Artifact: art,
		SourceDateEpoch: 1765065600, SourceDateEpochFrom: "git commit 3c1f"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.RecordReproduction(ctx, &kiln.Reproduction{Version: cur.Ref(), Identical: true, Digest: art.Digest}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	run := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		app := &cli.App{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
			Open: func(ctx context.Context, cfg cli.Config, logger *slog.Logger) (*cli.Services, error) {
				db, err := store.Open(ctx, cfg.Database, cfg.DataDir, logger, time.Now)
				if err != nil {
					return nil, err
				}
				b := &build.Builder{Registry: db, DataDir: cfg.DataDir}
				return &cli.Services{Registry: db, Reproductions: db, Builder: b, DataDir: cfg.DataDir, Close: db.Close}, nil
			}}
		code := app.Run(context.Background(), append([]string{"--data-dir", dir}, args...))
		return out.String(), errb.String(), code
	}
	if _, errs, code := run("version", "rebuild", old.Name, "--estate", est); code != 1 || !strings.Contains(errs, "give --check") {
		t.Errorf("without --check: exit %d, %s", code, errs)
	}
	if _, errs, code := run("version", "rebuild", old.Name, "--check", "--estate", est); code != 1 || !strings.Contains(errs, "built before kiln made reproducible bakes") {
		t.Errorf("a version without an epoch: exit %d, %s", code, errs)
	}
	out, errs, code := run("version", "show", cur.Name)
	if code != 0 || !strings.Contains(out, "Epoch:     SOURCE_DATE_EPOCH=1765065600 (2025-12-07T00:00:00Z, from git commit 3c1f)") ||
		!strings.Contains(out, "Reproduced: yes, bit for bit (kiln version rebuild --check, ") {
		t.Errorf("show: exit %d, %s\n%s", code, errs, out)
	}
	if out, _, _ := run("version", "show", old.Name); strings.Contains(out, "Reproduced") || strings.Contains(out, "Epoch") {
		t.Errorf("show of a version built before reproducible bakes:\n%s", out)
	}
}

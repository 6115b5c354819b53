package cli_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// exportEnv records, in dir's registry and artifact store, appserver-1
// with a rootfs, a qcow2 and a raw disk image (signed), appserver-2 with
// a rootfs only, an external appserver-3 (a Packer AMI) and a revoked
// appserver-4, and returns a kiln command runner with that key, and the
// artifacts' content by format.
func exportEnv(t *testing.T, dir string) (func(args ...string) (string, string, int), map[kiln.ArtifactFormat][]byte) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer := sign.NewSigner(key)
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	db.SealVersionsWith(signer.Seal)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 1<<20) // mostly zeros, as a raw disk is
	copy(raw[512:], "EFI PART")
	copy(raw[700000:], "ext4 data")
	content := map[kiln.ArtifactFormat][]byte{
		kiln.FormatRootfs: []byte("a root filesystem tarball"),
		kiln.FormatQCOW2:  append([]byte("QFI\xfb"), bytes.Repeat([]byte{7}, 70000)...),
		kiln.FormatRaw:    raw,
	}
	put := func(f kiln.ArtifactFormat) *kiln.Artifact {
		a, err := arts.Put(ctx, bytes.NewReader(content[f]))
		if err != nil {
			t.Fatal(err)
		}
		if f != kiln.FormatRootfs {
			a.Format = f
		}
		return a
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []kiln.Provenance{
		{Artifact: put(kiln.FormatRootfs), Artifacts: []kiln.Artifact{*put(kiln.FormatQCOW2), *put(kiln.FormatRaw)}},
		{Artifact: put(kiln.FormatRootfs)},
		{Method: kiln.MethodExternal, Artifact: &kiln.Artifact{Ref: "packer:amazon-ebs:eu-west-1:ami-0abc"}, RecordedBy: "local:test"},
		{Artifact: put(kiln.FormatRootfs)},
	} {
		if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: p}); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
		if _, err := db.SetStatus(ctx, kiln.VersionRef{Image: "appserver", Number: 4}, st, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Revoke(ctx, kiln.VersionRef{Image: "appserver", Number: 4}, "CVE-2026-1"); err != nil {
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
				return &cli.Services{Registry: db, Artifacts: arts, Signer: signer, DataDir: cfg.DataDir, Close: db.Close}, nil
			}}
		code := app.Run(context.Background(), append([]string{"--data-dir", dir}, args...))
		return out.String(), errb.String(), code
	}
	return run, content
}

func TestVersionExport(t *testing.T) {
	dir := t.TempDir()
	kilnRun, content := exportEnv(t, dir)
	outDir := t.TempDir()

	for _, f := range []kiln.ArtifactFormat{kiln.FormatQCOW2, kiln.FormatRaw, kiln.FormatRootfs} {
		file := filepath.Join(outDir, "appserver-1."+string(f))
		out, errs, code := kilnRun("version", "export", "appserver-1", "--format", string(f), "-o", file)
		if code != 0 || !strings.Contains(out, "appserver-1: wrote "+string(f)+" to "+file) || !strings.Contains(out, "signature and digest verified") {
			t.Fatalf("export %s: exit %d, %s%s", f, code, out, errs)
		}
		got, err := os.ReadFile(file)
		if err != nil || !bytes.Equal(got, content[f]) {
			t.Errorf("exported %s differs from the artifact (%d bytes, want %d; %v)", f, len(got), len(content[f]), err)
		}
		if f == kiln.FormatRaw {
			var st syscall.Stat_t
			if err := syscall.Stat(file, &st); err != nil || st.Blocks*512 >= int64(len(content[f]))/2 {
				t.Errorf("raw export is not sparse: %d blocks of 512 for %d bytes (%v)", st.Blocks, len(content[f]), err)
			}
		}
		if _, _, code := kilnRun("version", "export", "appserver-1", "--format", string(f), "-o", file); code != 1 {
			t.Errorf("export over an existing file: exit %d, want 1", code)
		}
	}
	// Standard output.
	out, errs, code := kilnRun("version", "export", "appserver-1", "--format", "rootfs", "-o", "-")
	if code != 0 || out != string(content[kiln.FormatRootfs]) || !strings.Contains(errs, "to standard output") {
		t.Errorf("export to stdout: exit %d, %q, %s", code, out, errs)
	}
	// show lists the artifacts.
	out, _, _ = kilnRun("version", "show", "appserver-1")
	for _, f := range []string{"rootfs", "qcow2", "raw"} {
		if !strings.Contains(out, "  "+f+" ") {
			t.Errorf("show does not list %s:\n%s", f, out)
		}
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"appserver-2", "--format", "qcow2"}, `appserver-2 has no qcow2 disk image; add formats = ["rootfs", "qcow2"] to its image line and build again (it has rootfs)`},
		{[]string{"appserver-1"}, "give --format: appserver-1 has rootfs, qcow2, raw"},
		{[]string{"appserver-1", "--format", "oci"}, "--artifacts oci://"},
		{[]string{"appserver-1", "--format", "vmdk"}, `unknown artifact format "vmdk"`},
		{[]string{"appserver-3", "--format", "rootfs"}, "external artifact (packer:amazon-ebs:eu-west-1:ami-0abc)"},
		{[]string{"appserver-4", "--format", "rootfs"}, "refusing to export: appserver-4 is revoked"},
	} {
		file := filepath.Join(outDir, "refused")
		_, errs, code := kilnRun(append(append([]string{"version", "export"}, c.args...), "-o", file)...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("export %v: exit %d, %s; want 1 and %q", c.args, code, errs, c.want)
		}
		if _, err := os.Stat(file); err == nil {
			t.Errorf("export %v left %s", c.args, file)
		}
	}

	// A stored disk image that no longer matches its digest is not
	// exported, and no file is left behind.
	var qcow string
	entries, _ := os.ReadDir(filepath.Join(dir, "artifacts", "sha256"))
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, "artifacts", "sha256", e.Name()))
		if bytes.HasPrefix(b, []byte("QFI\xfb")) {
			qcow = filepath.Join(dir, "artifacts", "sha256", e.Name())
		}
	}
	if err := os.Chmod(qcow, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(qcow, append([]byte("QFI\xfb"), bytes.Repeat([]byte{8}, 70000)...), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(outDir, "tampered.qcow2")
	if _, errs, code := kilnRun("version", "export", "appserver-1", "--format", "qcow2", "-o", file); code == 0 || !strings.Contains(errs, "does not verify") {
		t.Errorf("export of a tampered qcow2: exit %d, %s", code, errs)
	}
	left, _ := filepath.Glob(filepath.Join(outDir, "*tampered*"))
	if len(left) != 0 {
		t.Errorf("a failed export left %v", left)
	}
}

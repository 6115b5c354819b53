package cli_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/fixtures"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// kilnSigned is kilnCmd with a signing key, as cmd/kiln wires it.
func kilnSigned(t *testing.T, dir string, key ed25519.PrivateKey, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	app := &cli.App{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""),
		Open: func(ctx context.Context, cfg cli.Config, logger *slog.Logger) (*cli.Services, error) {
			db, err := store.Open(ctx, cfg.Database, cfg.DataDir, logger, time.Now)
			if err != nil {
				return nil, err
			}
			return &cli.Services{Registry: db, Tokens: db, Audit: db, DataDir: cfg.DataDir, Signer: sign.NewSigner(key), Close: db.Close}, nil
		}}
	code := app.Run(context.Background(), append([]string{"--data-dir", dir}, args...))
	return out.String(), errb.String(), code
}

func TestVersionSBOM(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(nil)
	ctx := context.Background()
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: "app", Provenance: kiln.Provenance{
		Sources: []kiln.Source{{Kind: kiln.SourceOrigin, Ref: "bookworm@http://deb.debian.org/debian"}},
		Packages: []kiln.Package{
			{Name: "libssl3", Version: "3.0.11-1~deb12u2", Architecture: "amd64", Source: "openssl"},
			{Name: "bash", Version: "5.2.15-2+b2", Architecture: "amd64", SourceVersion: "5.2.15-2"},
		},
		Artifact: &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("ab", 32), Size: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, errs, code := kilnSigned(t, dir, key, "version", "sbom", "app-1")
	if code == 0 || !strings.Contains(errs, "app-1 has no stored spdx SBOM") || !strings.Contains(errs, "--generate") {
		t.Fatalf("no SBOM yet: exit %d, %s", code, errs)
	}
	for _, f := range []string{"spdx", "cyclonedx"} {
		gen, errs, code := kilnSigned(t, dir, key, "version", "sbom", "app-1", "--format", f, "--generate")
		if code != 0 || !strings.Contains(errs, "licence NOASSERTION for 2 of 2 packages") || !strings.Contains(errs, "kept with app-1") {
			t.Fatalf("%s --generate: exit %d, %s", f, code, errs)
		}
		if !strings.Contains(gen, "pkg:deb/debian/bash@5.2.15-2%2Bb2?arch=amd64&distro=debian-12") {
			t.Errorf("%s: no purl for bash in %s", f, gen)
		}
		stored, errs, code := kilnSigned(t, dir, key, "version", "sbom", "app-1", "--format", f)
		if code != 0 {
			t.Fatalf("%s stored: exit %d, %s", f, code, errs)
		}
		var a, b any
		if json.Unmarshal([]byte(gen), &a) != nil || json.Unmarshal([]byte(stored), &b) != nil || !jsonEqual(a, b) {
			t.Errorf("%s: the stored SBOM differs from the generated one", f)
		}
		// Another key does not verify it.
		_, other, _ := ed25519.GenerateKey(nil)
		if _, errs, code := kilnSigned(t, dir, other, "version", "sbom", "app-1", "--format", f); code == 0 || !strings.Contains(errs, "does not verify") {
			t.Errorf("%s with another key: exit %d, %s", f, code, errs)
		}
	}
	out, _, _ := kilnSigned(t, dir, key, "version", "attachments", "app-1")
	if !strings.Contains(out, "sbom.spdx.dsse.json") || !strings.Contains(out, "sbom.cdx.dsse.json") {
		t.Errorf("attachments: %s", out)
	}
	// One attachment printed as it is kept: the envelope --envelope prints.
	env, _, _ := kilnSigned(t, dir, key, "version", "sbom", "app-1", "--envelope")
	if got, errs, code := kilnSigned(t, dir, key, "version", "attachments", "app-1", "sbom.spdx.dsse.json"); code != 0 || got+"\n" != env {
		t.Errorf("attachments app-1 sbom.spdx.dsse.json: exit %d %q, want the envelope %q (%s)", code, got, env, errs)
	}
	if _, errs, code := kilnSigned(t, dir, key, "version", "attachments", "app-1", "test-report.json"); code == 0 || !strings.Contains(errs, `no attachment "test-report.json"`) || !strings.Contains(errs, "kiln version attachments app-1") {
		t.Errorf("attachments app-1 of a missing one: exit %d %s", code, errs)
	}
	// No registry here: --from-registry says what to give.
	if _, errs, code := kilnSigned(t, dir, key, "version", "sbom", "app-1", "--from-registry"); code == 0 || !strings.Contains(errs, "--artifacts oci://") {
		t.Errorf("--from-registry without a registry: exit %d %s", code, errs)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestImportPackerManifest(t *testing.T) {
	dir := t.TempDir()
	kilnCmd(t, dir, "image", "create", "web")
	_, errs, code := kilnCmd(t, dir, "version", "import", "packer-manifest", "../packer/testdata/missing-artifact.json", "--image", "web")
	if code == 0 || !strings.Contains(errs, "missing-artifact.json: $.builds[1].artifact_id") {
		t.Fatalf("malformed: exit %d, %s", code, errs)
	}
	_, errs, code = kilnCmd(t, dir, "version", "import", "packer-manifest", "../packer/testdata/multi-region.json", "--image", "nosuch")
	if code == 0 || !strings.Contains(errs, "image nosuch does not exist, so nothing was imported") {
		t.Fatalf("unknown image: exit %d, %s", code, errs)
	}
	if out, _, _ := kilnCmd(t, dir, "version", "list", "web"); strings.Count(out, "\n") != 1 {
		t.Fatalf("something was imported from a refused manifest:\n%s", out)
	}
	out, errs, code := kilnCmd(t, dir, "version", "import", "packer-manifest", "../packer/testdata/multi-region.json", "--image", "web")
	if code != 0 || !strings.Contains(out, "web-1") || !strings.Contains(out, "packer:amazon-ebs:us-east-1:ami-0abc1234def567890,eu-west-1:ami-0fed9876cba543210") {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	if _, errs, _ := kilnCmd(t, dir, "version", "import", "packer-manifest", "../packer/testdata/multi-region.json", "--image", "web"); !strings.Contains(errs, "nothing new") {
		t.Errorf("second import: %s", errs)
	}
	out, _, _ = kilnCmd(t, dir, "-o", "json", "version", "show", "web-1")
	if !strings.Contains(out, `"method": "external"`) || !strings.Contains(out, `"team": "payments"`) {
		t.Errorf("show: %s", out)
	}
}

// Packages at import (by one region of a multi-region AMI) or afterwards,
// once; refused for a build the manifest does not have.
func TestImportPackerManifestPackages(t *testing.T) {
	dir := t.TempDir()
	pk := filepath.Join(dir, "packages.tsv")
	if err := os.WriteFile(pk, []byte("libssl3\t3.0.11-1~deb12u2\tamd64\topenssl\t3.0.11-1~deb12u2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kilnCmd(t, dir, "image", "create", "web")
	kilnCmd(t, dir, "image", "create", "docker")
	_, errs, code := kilnCmd(t, dir, "version", "import", "packer-manifest", "../packer/testdata/multi-region.json", "--image", "web", "--packages", "us-west-2:ami-1="+pk)
	if code == 0 || !strings.Contains(errs, `no build of the manifest has artifact id "us-west-2:ami-1"; it has us-east-1:ami-0abc1234def567890,eu-west-1:ami-0fed9876cba543210`) {
		t.Fatalf("--packages for no build: exit %d, %s", code, errs)
	}
	if out, _, _ := kilnCmd(t, dir, "version", "list", "web"); strings.Count(out, "\n") != 1 {
		t.Fatalf("something was imported:\n%s", out)
	}
	if _, errs, code := kilnCmd(t, dir, "version", "import", "packer-manifest", "../packer/testdata/multi-region.json", "--image", "web", "--packages", "eu-west-1:ami-0fed9876cba543210="+pk); code != 0 {
		t.Fatalf("import with packages: exit %d, %s", code, errs)
	}
	out, _, _ := kilnCmd(t, dir, "-o", "json", "version", "show", "web-1")
	if !strings.Contains(out, `"source": "openssl"`) {
		t.Errorf("web-1 has not the packages given at import: %s", out)
	}
	_, errs, code = kilnCmd(t, dir, "version", "packages", "set", "web-1", pk)
	if code == 0 || !strings.Contains(errs, "web-1 has a package manifest already (1 packages)") {
		t.Errorf("packages set after import with packages: exit %d, %s", code, errs)
	}
	// FILE alone for a manifest of one build; then set later for one
	// imported without.
	fx := fixtures.Path(t, "packer-manifest")
	docker := filepath.Join(fx, "hashicorp-packer__docs-example-docker.json")
	if _, errs, code := kilnCmd(t, dir, "version", "import", "packer-manifest", docker, "--image", "docker"); code != 0 {
		t.Fatalf("docker import: %s", errs)
	}
	if out, errs, code := kilnCmd(t, dir, "version", "packages", "set", "docker-1", pk); code != 0 || !strings.Contains(out, "docker-1: 1 packages recorded") {
		t.Fatalf("packages set: exit %d, %s%s", code, out, errs)
	}
	if _, errs, code := kilnCmd(t, dir, "version", "packages", "set", "docker-1", filepath.Join(dir, "missing.tsv")); code == 0 || !strings.Contains(errs, "FILE") {
		t.Errorf("missing file: exit %d, %s", code, errs)
	}
}

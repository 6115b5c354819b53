package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact/oci"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/registrytest"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// registryReferrers lists the referrers of an image's tag by artifact
// type with the registry's own HTTP API: docker-registry 2.8 has no
// referrers API, so through the sha256-<hex> tag's image index.
func registryReferrers(t *testing.T, reg *registrytest.Registry, repo, tag string) map[string]string {
	t.Helper()
	get := func(path, accept string) (*http.Response, []byte) {
		req, err := http.NewRequest(http.MethodGet, "http://"+reg.Host+"/v2/"+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Accept", accept)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, _ := get(repo+"/manifests/"+tag, ocispec.MediaTypeImageManifest)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD %s:%s: %s", repo, tag, resp.Status)
	}
	d := resp.Header.Get("Docker-Content-Digest")
	resp, b := get(repo+"/manifests/sha256-"+strings.TrimPrefix(d, "sha256:"), ocispec.MediaTypeImageIndex)
	if resp.StatusCode == http.StatusNotFound {
		return map[string]string{}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("referrers of %s:%s: %s %s", repo, tag, resp.Status, b)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range idx.Manifests {
		out[m.ArtifactType] = m.Digest.String()
	}
	return out
}

// A version's SBOMs go to the registry as referrers of its image, like
// its provenance: pushed with the image (`kiln artifact push`), attached
// when kept later (`--generate`, and a build's, which keeps them after
// the image is pushed); `kiln version sbom` on another machine reads them
// from the registry (--from-registry, or when its database keeps none)
// and verifies the signature against the version's record.
func TestRegistrySBOMReferrers(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	url := reg.URL("kiln")
	dirA := t.TempDir()
	db, signer := seedRollout(t, dirA, []string{smallImage(t), smallImage(t)})
	db.Close()
	onA := []string{"--artifacts", url, "--artifacts-credentials", noCredentials(t)}

	// Machine D's database is a copy taken before any SBOM was kept.
	dirD := t.TempDir()
	ents, err := os.ReadDir(dirA)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "kiln.db") {
			b, err := os.ReadFile(filepath.Join(dirA, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dirD, e.Name()), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	onD := []string{"--database", "sqlite:" + filepath.Join(dirD, "kiln.db"), "--signing-key", filepath.Join(dirA, "keys", "signing.key"), "--artifacts", url, "--artifacts-credentials", noCredentials(t)}

	// Kept before the image exists: said, and `kiln artifact push` pushes
	// it with the image.
	spdx, errs, code := run(t, dirA, append(onA, "version", "sbom", "appserver-1", "--format", "spdx", "--generate")...)
	if code != 0 || !strings.Contains(errs, "kept with appserver-1") || !strings.Contains(errs, "not attached to its image") || !strings.Contains(errs, "kiln artifact push appserver-1") {
		t.Fatalf("sbom --generate before the push: exit %d %q", code, errs)
	}
	mustRun(t, dirA, append(onA, "artifact", "push", "appserver-1")...)
	refs := registryReferrers(t, reg, "kiln/appserver", "1")
	if len(refs) != 2 || refs[oci.ArtifactTypeDSSE] == "" || refs[oci.ArtifactTypeSPDX] == "" {
		t.Fatalf("referrers of appserver:1 after the push = %v; want the provenance and the SPDX SBOM", refs)
	}
	// Kept after: attached at once.
	cdx, errs, code := run(t, dirA, append(onA, "version", "sbom", "appserver-1", "--format", "cyclonedx", "--generate")...)
	if code != 0 || !strings.Contains(errs, "attached to its image in the registry: oci://"+reg.Host+"/kiln/appserver@sha256:") {
		t.Fatalf("sbom --generate after the push: exit %d %q", code, errs)
	}
	refs = registryReferrers(t, reg, "kiln/appserver", "1")
	if len(refs) != 3 || refs[oci.ArtifactTypeCycloneDX] == "" || !strings.Contains(errs, refs[oci.ArtifactTypeCycloneDX]) {
		t.Fatalf("referrers of appserver:1 = %v; want the CycloneDX SBOM too (%q)", refs, errs)
	}

	// Machine B shares the database: --from-registry reads the registry's
	// copy, verified, and it is the same document.
	dirB, onB := machineB(t, dirA, url)
	out, errs, code := run(t, dirB, append(onB, "version", "sbom", "appserver-1", "--from-registry")...)
	if code != 0 || out != spdx || !strings.Contains(errs, "read from the registry and verified") || !strings.Contains(errs, refs[oci.ArtifactTypeSPDX]) {
		t.Errorf("sbom --from-registry on machine B: exit %d, same document %v, %q", code, out == spdx, errs)
	}
	// Machine D's database keeps no SBOM: the registry's is used.
	out, errs, code = run(t, dirD, append(onD, "version", "sbom", "appserver-1", "--format", "cyclonedx")...)
	if code != 0 || out != cdx || !strings.Contains(errs, "read from the registry and verified") {
		t.Errorf("sbom on machine D: exit %d, same document %v, %q", code, out == cdx, errs)
	}
	// appserver-2 has none anywhere: said, with the way to make one.
	_, errs, code = run(t, dirD, append(onD, "version", "sbom", "appserver-2")...)
	if code == 0 || !strings.Contains(errs, "nor one in the registry") || !strings.Contains(errs, "--generate") {
		t.Errorf("sbom of a version without one: exit %d %q", code, errs)
	}
	_, errs, code = run(t, dirB, "--database", "sqlite:"+filepath.Join(dirA, "kiln.db"), "--signing-key", filepath.Join(dirA, "keys", "signing.key"), "version", "sbom", "appserver-1", "--from-registry")
	if code == 0 || !strings.Contains(errs, "--artifacts oci://") {
		t.Errorf("sbom --from-registry without a registry: exit %d %q", code, errs)
	}

	// A registry copy that is not about this version (appserver-1's SBOM
	// attached to appserver-2's image) is refused.
	ctx := context.Background()
	db, err = store.Open(ctx, "", dirA, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	v1, err := db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 1})
	if err != nil {
		t.Fatal(err)
	}
	v2, err := db.FindVersion(ctx, kiln.VersionRef{Image: "appserver", Number: 2})
	if err != nil {
		t.Fatal(err)
	}
	mustRun(t, dirA, append(onA, "artifact", "push", "appserver-2")...)
	cfg := cli.Config{DataDir: dirA, Artifacts: url, ArtifactsCredentials: noCredentials(t)}
	logs := &bytes.Buffer{}
	_, _, images, err := openArtifacts(cfg, db, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := db.Attachment(ctx, v1.Ref(), sign.SBOMAttachment(sign.PredicateSPDX))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := images.AttachSBOM(ctx, v2, foreign); err != nil {
		t.Fatal(err)
	}
	_, errs, code = run(t, dirB, append(onB, "version", "sbom", "appserver-2", "--from-registry")...)
	if code == 0 || !strings.Contains(errs, "not about appserver-2") || !strings.Contains(errs, "oci://"+reg.Host+"/kiln/appserver@sha256:") {
		t.Errorf("sbom --from-registry of another version's SBOM: exit %d %q", code, errs)
	}

	// A build keeps its SBOMs after the version is recorded and its image
	// pushed: the builder's registry attaches each as it is kept.
	pub := &publishing{Registry: db, images: images, leases: db}
	att, err := signer.SealSBOM(v2, sign.PredicateCycloneDX, []byte(`{"bomFormat":"CycloneDX","specVersion":"1.6"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.AddAttachment(ctx, v2.Ref(), att); err != nil {
		t.Fatal(err)
	}
	if refs := registryReferrers(t, reg, "kiln/appserver", "2"); refs[oci.ArtifactTypeCycloneDX] == "" {
		t.Errorf("referrers of appserver:2 after the build kept its SBOM = %v; logs: %s", refs, logs)
	}
	out, errs, code = run(t, dirB, append(onB, "version", "sbom", "appserver-2", "--from-registry", "--format", "cyclonedx")...)
	if code != 0 || !strings.Contains(out, `"bomFormat": "CycloneDX"`) {
		t.Errorf("the build's SBOM read from the registry: exit %d %q %q", code, out, errs)
	}
}

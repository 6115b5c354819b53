package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/artifact/oci"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/internal/layer"
	"github.com/kiln-project/kiln/internal/registrytest"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// seedRegistryVersions records appserver-1 (a single tar) and
// appserver-2 (semver 2.0.0, two gzip layers and a qcow2 disk image) in
// dir's database, signed,
// with their content in dir's artifact store.
func seedRegistryVersions(t *testing.T, dir string) (v1, v2 *kiln.Version, signer *sign.Signer) {
	t.Helper()
	ctx := kiln.WithActor(context.Background(), "local:test")
	signer, _, err := sign.LoadOrCreateKey(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, "", dir, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SealVersionsWith(signer.Seal)
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "appserver"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(smallImage(t))
	if err != nil {
		t.Fatal(err)
	}
	tarArt, err := arts.Put(ctx, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if v1, err = db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", Provenance: kiln.Provenance{Artifact: tarArt, BuiltBy: "test"}}); err != nil {
		t.Fatal(err)
	}
	var layers []kiln.Layer
	for i, files := range []map[string]string{
		{"etc/os-release": "ID=debian\n", "usr/bin/app": strings.Repeat("binary ", 4000)},
		{"etc/kiln-release": "image=appserver\nversion=2\nname=appserver-2\n"},
	} {
		root := t.TempDir()
		for p, data := range files {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l, err := layer.Put(ctx, arts, root, layer.WriteOptions{Layer: i > 0})
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	layered, err := layer.PutList(ctx, arts, layers)
	if err != nil {
		t.Fatal(err)
	}
	// A stand-in for its qcow2 disk image: verification reads bytes, not
	// disks.
	disk, err := arts.Put(ctx, strings.NewReader(strings.Repeat("QFI\xfb disk ", 300)))
	if err != nil {
		t.Fatal(err)
	}
	disk.Format = kiln.FormatQCOW2
	if v2, err = db.CreateVersion(ctx, &kiln.NewVersion{Image: "appserver", SemVer: "2.0.0", Provenance: kiln.Provenance{Artifact: layered, Artifacts: []kiln.Artifact{*disk}, BuiltBy: "test"}}); err != nil {
		t.Fatal(err)
	}
	return v1, v2, signer
}

// `kiln version verify oci://…` on a machine that has only the registry
// and the builder's public key: no database, no data directory (the one
// given stays absent). It verifies the signature, matches the signed
// artifact with the image's layers and reads every layer; a wrong or
// missing key, a missing or foreign provenance referrer, a manifest of
// another media type and a tampered layer each fail, naming the
// reference and what to do.
func TestVerifyFromRegistryAlone(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	url := reg.URL("kiln")
	dirA := t.TempDir()
	v1, v2, signer := seedRegistryVersions(t, dirA)
	creds := noCredentials(t)
	onA := []string{"--artifacts", url, "--artifacts-credentials", creds}
	mustRun(t, dirA, append(onA, "artifact", "push", "appserver-1")...)
	mustRun(t, dirA, append(onA, "artifact", "push", "appserver-2")...)
	pub := filepath.Join(t.TempDir(), "kiln.pub")
	if err := os.WriteFile(pub, []byte(mustRun(t, dirA, "key", "export")), 0o644); err != nil {
		t.Fatal(err)
	}

	// The other machine: a data directory that does not exist, and must
	// not come to exist; no --database.
	empty := filepath.Join(t.TempDir(), "absent")
	onE := []string{"--artifacts-credentials", creds}
	verify := func(args ...string) (string, string, int) {
		t.Helper()
		return run(t, empty, append(append(onE, "version", "verify"), args...)...)
	}
	image := "oci://" + reg.Host + "/kiln/appserver"

	out, errs, code := verify(image+":1", "--key", pub)
	if code != 0 || !strings.Contains(out, "appserver-1: signature and every layer verified from the registry alone: "+image+"@sha256:") ||
		!strings.Contains(out, "key "+signer.KeyID()) || !strings.Contains(out, "1 layer(s)") || !strings.Contains(out, "artifact "+v1.Provenance.Artifact.Digest) {
		t.Errorf("verify appserver:1 from the registry: exit %d %q %q", code, out, errs)
	}

	// The layered version by its semver tag, as JSON.
	out, errs, code = verify(image+":2.0.0", "--key", pub, "-o", "json")
	if code != 0 {
		t.Fatalf("verify appserver:2.0.0 -o json: exit %d %q", code, errs)
	}
	var r cli.RegistryVerification
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("verify -o json: %v: %q", err, out)
	}
	a := v2.Provenance.Artifact
	disk := v2.Provenance.Artifacts[0]
	if r.Version != "appserver-2" || r.SemVer != "2.0.0" || r.KeyID != signer.KeyID() || r.Artifact != a.Digest || !r.ContentRead ||
		r.Bytes != a.Size+disk.Size || len(r.Layers) != 2 || r.Layers[1].Digest != a.Layers[1].Digest || r.Layers[1].DiffID != a.Layers[1].DiffID ||
		!strings.HasPrefix(r.Ref, image+"@sha256:") || !strings.HasPrefix(r.Provenance, image+"@sha256:") ||
		len(r.DiskImages) != 1 || r.DiskImages[0].Digest != disk.Digest || r.DiskImages[0].Format != "qcow2" {
		t.Errorf("verify -o json = %+v; want appserver-2's two layers and qcow2 disk image, %d bytes read, the signer's key", r, a.Size+disk.Size)
	}

	// --from-registry: IMAGE-N in the --artifacts registry, as
	// `kiln version sbom --from-registry` names it.
	out, errs, code = verify("appserver-2", "--from-registry", "--key", pub, "--artifacts", url)
	if code != 0 || !strings.Contains(out, "appserver-2: signature, every layer and every disk image verified from the registry alone") || !strings.Contains(out, "2 layer(s), 1 disk image(s)") {
		t.Errorf("verify appserver-2 --from-registry: exit %d %q %q", code, out, errs)
	}
	_, errs, code = verify("appserver-2", "--from-registry", "--key", pub)
	if code == 0 || !strings.Contains(errs, "--artifacts oci://HOST/REPOSITORY") {
		t.Errorf("--from-registry without --artifacts: exit %d %q", code, errs)
	}

	// No key, a wrong key.
	_, errs, code = verify(image + ":1")
	if code == 0 || !strings.Contains(errs, "--key") || !strings.Contains(errs, "kiln key export") {
		t.Errorf("verify without --key: exit %d %q", code, errs)
	}
	other, _, err := sign.LoadOrCreateKey(t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(t.TempDir(), "other.pub")
	if err := os.WriteFile(wrong, other.PublicKeyPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errs, code = verify(image+":1", "--key", wrong)
	if code == 0 || !strings.Contains(errs, "does not verify with key "+other.KeyID()) || !strings.Contains(errs, image+":1") || !strings.Contains(errs, "--key") {
		t.Errorf("verify with another kiln's key: exit %d %q", code, errs)
	}
	// Either of two keys (a rotation) is accepted.
	if out, errs, code := verify(image+":1", "--key", wrong, "--key", pub); code != 0 || !strings.Contains(out, "key "+signer.KeyID()) {
		t.Errorf("verify with two keys: exit %d %q %q", code, out, errs)
	}

	// Images pushed by hand with the registry library: one without a
	// provenance referrer, one with another version's.
	ctx := context.Background()
	st, err := oci.Open(url, oci.Options{CredentialsFile: creds})
	if err != nil {
		t.Fatal(err)
	}
	local, err := artifact.Open(dirA)
	if err != nil {
		t.Fatal(err)
	}
	tarLayer := []oci.Layer{{Digest: v1.Provenance.Artifact.Digest, Size: v1.Provenance.Artifact.Size}}
	if _, err := st.PushVersion(ctx, &oci.Version{Image: "appserver", Number: 7, Layers: tarLayer}, local); err != nil {
		t.Fatal(err)
	}
	_, errs, code = verify(image+":7", "--key", pub)
	if code == 0 || !strings.Contains(errs, image+":7") || !strings.Contains(errs, "has no signed provenance attached") || !strings.Contains(errs, "kiln artifact push appserver-7") {
		t.Errorf("verify of an image without provenance: exit %d %q", code, errs)
	}
	db, err := store.Open(ctx, "", dirA, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	env1, err := db.Attachment(ctx, v1.Ref(), sign.EnvelopeAttachment)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PushVersion(ctx, &oci.Version{Image: "appserver", Number: 8, Layers: tarLayer, Envelope: env1.Data}, local); err != nil {
		t.Fatal(err)
	}
	_, errs, code = verify(image+":8", "--key", pub)
	if code == 0 || !strings.Contains(errs, image+":8") || !strings.Contains(errs, "is signed for appserver-1, but the image is appserver-8") || !strings.Contains(errs, "do not trust") {
		t.Errorf("verify of an image with another version's provenance: exit %d %q", code, errs)
	}

	// Signed for the image's version, but about other layers.
	v9 := &kiln.Version{Image: "appserver", Number: 9, Provenance: v2.Provenance}
	env9, err := signer.SignVersion(v9)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.PushVersion(ctx, &oci.Version{Image: "appserver", Number: 9, Layers: tarLayer, Envelope: env9}, local); err != nil {
		t.Fatal(err)
	}
	_, errs, code = verify(image+":9", "--key", pub)
	if code == 0 || !strings.Contains(errs, image+":9") || !strings.Contains(errs, "has 1 layer(s), but the signed artifact "+v2.Provenance.Artifact.Digest+" of appserver-9 has 2") {
		t.Errorf("verify of an image whose layers are not the signed ones: exit %d %q", code, errs)
	}

	// The signed layers, in another order.
	v10 := &kiln.Version{Image: "appserver", Number: 10, Provenance: v2.Provenance}
	env10, err := signer.SignVersion(v10)
	if err != nil {
		t.Fatal(err)
	}
	var swapped []oci.Layer
	for _, l := range slices.Backward(v2.Provenance.Artifact.Layers) {
		swapped = append(swapped, oci.Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: l.DiffID})
	}
	if _, err := st.PushVersion(ctx, &oci.Version{Image: "appserver", Number: 10, Layers: swapped, Envelope: env10}, local); err != nil {
		t.Fatal(err)
	}
	_, errs, code = verify(image+":10", "--key", pub)
	if code == 0 || !strings.Contains(errs, "layer 1 of "+image+":10") || !strings.Contains(errs, "is not the signed version's") {
		t.Errorf("verify of an image with the signed layers swapped: exit %d %q", code, errs)
	}

	// A manifest of another media type: an image index under a tag.
	d1, err := st.Resolve(ctx, "appserver", "1")
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": ocispec.MediaTypeImageIndex,
		"manifests": []map[string]any{{"mediaType": ocispec.MediaTypeImageManifest, "digest": d1, "size": manifestSize(t, reg, d1)}}})
	req, err := http.NewRequest(http.MethodPut, "http://"+reg.Host+"/v2/kiln/appserver/manifests/index", bytes.NewReader(idx))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ocispec.MediaTypeImageIndex)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT an image index: %s", resp.Status)
	}
	_, errs, code = verify(image+":index", "--key", pub)
	if code == 0 || !strings.Contains(errs, "appserver:index in oci://"+reg.Host+"/kiln/appserver") || !strings.Contains(errs, "is a "+ocispec.MediaTypeImageIndex+", not an OCI image manifest") {
		t.Errorf("verify of an image index: exit %d %q", code, errs)
	}

	// The disk image gone from the store's repository.
	diskData := blobData(reg, disk.Digest)
	diskBytes, err := os.ReadFile(diskData)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(diskData)); err != nil {
		t.Fatal(err)
	}
	_, errs, code = verify(image+":2", "--key", pub)
	if code == 0 || !strings.Contains(errs, "the qcow2 disk image "+disk.Digest) || !strings.Contains(errs, "is not in "+url) || !strings.Contains(errs, "kiln artifact push appserver-2") {
		t.Errorf("verify with the disk image missing: exit %d %q", code, errs)
	}
	if err := os.MkdirAll(filepath.Dir(diskData), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(diskData, diskBytes, 0o644); err != nil {
		t.Fatal(err)
	}

	// A layer altered in the registry's storage: the signature still
	// verifies (--signature-only reads no layer), the content does not.
	top := a.Layers[1].Digest
	data := blobData(reg, top)
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := verify(image+":2", "--key", pub, "--signature-only"); code != 0 || !strings.Contains(out, "not read: --signature-only") {
		t.Errorf("verify --signature-only of a tampered layer: exit %d %q %q", code, out, errs)
	}
	_, errs, code = verify(image+":2", "--key", pub)
	if code == 0 || !strings.Contains(errs, "layer 2 of 2 of "+image+":2: ") || !strings.Contains(errs, top) || !strings.Contains(errs, "corrupted") || !strings.Contains(errs, "oci://"+reg.Host+"/kiln/appserver") || !strings.Contains(errs, "push it again") {
		t.Errorf("verify of a tampered layer: exit %d %q", code, errs)
	}

	if _, err := os.Stat(empty); !os.IsNotExist(err) {
		t.Errorf("verifying from the registry made the data directory %s (%v)", empty, err)
	}
}

// manifestSize is the size of a manifest in the registry, by digest.
func manifestSize(t *testing.T, reg *registrytest.Registry, d string) int64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+reg.Host+"/v2/kiln/appserver/manifests/"+d, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD manifest %s: %s", d, resp.Status)
	}
	return resp.ContentLength
}

package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/registrytest"
)

var (
	spdxEnvelope = []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"c3BkeA==","signatures":[{"keyid":"k","sig":"c3BkeA=="}]}`)
	cdxEnvelope  = []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"Y2R4","signatures":[{"keyid":"k","sig":"Y2R4"}]}`)
)

// registryGet reads a path of the registry's HTTP API.
func registryGet(t *testing.T, reg *registrytest.Registry, path, accept string) []byte {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+reg.Host+"/v2/"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/%s: %s %s", path, resp.Status, b)
	}
	return b
}

// referrersInRegistry returns the referrers of a manifest by artifact
// type, read with the registry's own API: docker-registry 2.8 has no
// referrers API, so from the sha256-<hex> tag's image index.
func referrersInRegistry(t *testing.T, reg *registrytest.Registry, repo, manifest string) map[string]ocispec.Descriptor {
	t.Helper()
	var idx ocispec.Index
	b := registryGet(t, reg, repo+"/manifests/sha256-"+strings.TrimPrefix(manifest, "sha256:"), ocispec.MediaTypeImageIndex)
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[string]ocispec.Descriptor{}
	for _, d := range idx.Manifests {
		out[d.ArtifactType] = d
	}
	return out
}

// A version's SBOM attestations are pushed as referrers of its manifest,
// beside the provenance: the registry's API lists them (the sha256-<hex>
// fallback tag on docker-registry 2.8), each an artifact with the
// predicate type annotated and the envelope as its one layer; Attestation
// reads them back; Attach adds one to a version pushed before and is a
// no-op the second time.
func TestAttestationsAsReferrers(t *testing.T) {
	ctx := context.Background()
	reg, s := plainStore(t)
	src := newMemStore()
	v := basicVersion(t, src)
	v.Attestations = []Attestation{{ArtifactType: ArtifactTypeSPDX, PredicateType: "https://spdx.dev/Document/v2.3", Envelope: spdxEnvelope}}
	p, err := s.PushVersion(ctx, v, src)
	if err != nil {
		t.Fatal(err)
	}
	refs := referrersInRegistry(t, reg, "kiln/basic-linux", p.Digest)
	if len(refs) != 2 || refs[ArtifactTypeDSSE].Digest == "" || refs[ArtifactTypeSPDX].Digest == "" {
		t.Fatalf("referrers in the registry = %v; want the provenance and the SPDX SBOM", refs)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(registryGet(t, reg, "kiln/basic-linux/manifests/"+refs[ArtifactTypeSPDX].Digest.String(), ocispec.MediaTypeImageManifest), &m); err != nil {
		t.Fatal(err)
	}
	if m.Subject == nil || m.Subject.Digest.String() != p.Digest || m.ArtifactType != ArtifactTypeSPDX || len(m.Layers) != 1 ||
		m.Layers[0].MediaType != ArtifactTypeDSSE || m.Annotations[AnnotationPredicateType] != "https://spdx.dev/Document/v2.3" {
		t.Errorf("the SPDX referrer's manifest = %+v", m)
	}
	if got := registryGet(t, reg, "kiln/basic-linux/blobs/"+m.Layers[0].Digest.String(), ""); !bytes.Equal(got, spdxEnvelope) {
		t.Errorf("the SPDX referrer's layer = %s; want the envelope", got)
	}

	env, ref, err := s.Attestation(ctx, "basic-linux", "1", ArtifactTypeSPDX)
	if err != nil || !bytes.Equal(env, spdxEnvelope) || ref != reg.URL("kiln/basic-linux")+"@"+refs[ArtifactTypeSPDX].Digest.String() {
		t.Errorf("Attestation SPDX = %s, %s, %v", env, ref, err)
	}
	// The provenance is still the provenance.
	if got, err := s.PullVersion(ctx, "basic-linux", "1"); err != nil || !bytes.Equal(got.Envelope, envelope) {
		t.Errorf("PullVersion's envelope beside an SBOM = %s, %v", got.Envelope, err)
	}
	_, _, err = s.Attestation(ctx, "basic-linux", "1", ArtifactTypeCycloneDX)
	if kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), ArtifactTypeCycloneDX) || !strings.Contains(err.Error(), "kiln artifact push") {
		t.Errorf("Attestation of a type not attached = %v; want not_found saying what to do", err)
	}

	// Attached after the push (a build keeps its SBOMs once the version is
	// recorded and pushed); again is a no-op.
	cdx := Attestation{ArtifactType: ArtifactTypeCycloneDX, PredicateType: "https://cyclonedx.org/bom", Envelope: cdxEnvelope}
	r1, err := s.Attach(ctx, "basic-linux", "1", cdx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := s.Attach(ctx, "basic-linux", "1", cdx)
	if err != nil || r2 != r1 {
		t.Errorf("Attach again = %s, %v; want %s", r2, err, r1)
	}
	refs = referrersInRegistry(t, reg, "kiln/basic-linux", p.Digest)
	if len(refs) != 3 || !strings.HasSuffix(r1, "@"+refs[ArtifactTypeCycloneDX].Digest.String()) {
		t.Errorf("referrers after Attach = %v; want three, the CycloneDX one %s", refs, r1)
	}
	if env, _, err := s.Attestation(ctx, "basic-linux", p.Digest, ArtifactTypeCycloneDX); err != nil || !bytes.Equal(env, cdxEnvelope) {
		t.Errorf("Attestation CycloneDX = %s, %v", env, err)
	}
	// A version pushed again with its attestations is the same manifest.
	v.Attestations = append(v.Attestations, cdx)
	if again, err := s.PushVersion(ctx, v, src); err != nil || again.Digest != p.Digest {
		t.Errorf("PushVersion again = %+v, %v", again, err)
	}
	if refs = referrersInRegistry(t, reg, "kiln/basic-linux", p.Digest); len(refs) != 3 {
		t.Errorf("referrers after pushing again = %v", refs)
	}
	// Blobs holds on to them: manifest, config, layer, three referrer
	// manifests, their shared empty config and three envelopes.
	if blobs, err := s.Blobs(ctx, "basic-linux", "1"); err != nil || len(blobs) != 10 {
		t.Errorf("Blobs = %v, %v; want 10", blobs, err)
	}

	// Bad input.
	if _, err := s.Attach(ctx, "basic-linux", "1", Attestation{ArtifactType: "text/plain", Envelope: cdxEnvelope}); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), ArtifactTypeSPDX) {
		t.Errorf("Attach of another type = %v", err)
	}
	if _, err := s.Attach(ctx, "basic-linux", "9", cdx); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "basic-linux:9") {
		t.Errorf("Attach to a missing version = %v", err)
	}
	bad := basicVersion(t, src)
	bad.Attestations = []Attestation{{ArtifactType: ArtifactTypeSPDX, Envelope: []byte("not json")}}
	if _, err := s.PushVersion(ctx, bad, src); kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "attestations[0]") {
		t.Errorf("PushVersion with a malformed attestation = %v", err)
	}
}

// On a registry with the OCI 1.1 referrers API (an in-memory one: every
// other test runs docker-registry 2.8, which has none), the provenance
// and the SBOM are pushed as manifests whose subject is the image's
// manifest, found through GET /v2/<name>/referrers/<digest>: no
// sha256-<hex> fallback tag is written or read. Another store (another
// machine, no state carried over) pulls, verifies and reads the
// attestations through the same API.
func TestAttestationsReferrersAPI(t *testing.T) {
	ctx := context.Background()
	reg := startReferrersRegistry(t)
	url := "oci://" + reg.Host + "/kiln"
	s, err := Open(url, Options{CredentialsFile: emptyCredentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	src := newMemStore()
	v := basicVersion(t, src)
	v.Attestations = []Attestation{{ArtifactType: ArtifactTypeSPDX, PredicateType: "https://spdx.dev/Document/v2.3", Envelope: spdxEnvelope}}
	p, err := s.PushVersion(ctx, v, src)
	if err != nil {
		t.Fatal(err)
	}

	// What the registry's referrers API lists, asked directly.
	resp, err := http.Get("http://" + reg.Host + "/v2/kiln/basic-linux/referrers/" + p.Digest)
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	err = json.NewDecoder(resp.Body).Decode(&idx)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	byType := map[string]ocispec.Descriptor{}
	for _, d := range idx.Manifests {
		byType[d.ArtifactType] = d
	}
	if len(idx.Manifests) != 2 || byType[ArtifactTypeDSSE].Digest == "" || byType[ArtifactTypeSPDX].Digest == "" {
		t.Fatalf("the referrers API lists %+v; want the provenance and the SPDX SBOM", idx.Manifests)
	}
	resp, err = http.Get("http://" + reg.Host + "/v2/kiln/basic-linux/manifests/" + byType[ArtifactTypeDSSE].Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	err = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject == nil || m.Subject.Digest.String() != p.Digest || m.ArtifactType != ArtifactTypeDSSE || len(m.Layers) != 1 || m.Layers[0].MediaType != ArtifactTypeDSSE {
		t.Errorf("the provenance referrer's manifest = %+v; want subject %s and one DSSE layer", m, p.Digest)
	}
	fallback := "/manifests/sha256-" + strings.TrimPrefix(p.Digest, "sha256:")
	for _, r := range reg.requested() {
		if strings.Contains(r, fallback) {
			t.Errorf("the push used the tag fallback on a registry with the referrers API: %s", r)
		}
	}
	if tags, err := s.Tags(ctx, "basic-linux"); err != nil || !slices.Equal(tags, []string{"1", "1.0.0-20261201_0000"}) {
		t.Errorf("tags = %v, %v; want the number and the semver only", tags, err)
	}

	// Read back from another store: through the referrers API.
	other, err := Open(url, Options{CredentialsFile: emptyCredentials(t)})
	if err != nil {
		t.Fatal(err)
	}
	before := len(reg.requested())
	got, err := other.Verify(ctx, "basic-linux", "1")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Envelope, envelope) || got.Digest != p.Digest {
		t.Errorf("Verify = %s %s; want the pushed manifest with its provenance", got.Digest, got.Envelope)
	}
	env, ref, err := other.Attestation(ctx, "basic-linux", "1", ArtifactTypeSPDX)
	if err != nil || !bytes.Equal(env, spdxEnvelope) || ref != url+"/basic-linux@"+byType[ArtifactTypeSPDX].Digest.String() {
		t.Errorf("Attestation SPDX = %s, %s, %v", env, ref, err)
	}
	asked := reg.requested()[before:]
	apiCalls := 0
	for _, r := range asked {
		if strings.HasPrefix(r, "GET /v2/kiln/basic-linux/referrers/"+p.Digest) {
			apiCalls++
		}
		if strings.Contains(r, fallback) {
			t.Errorf("reading back asked for the fallback tag: %s", r)
		}
	}
	if apiCalls < 2 {
		t.Errorf("reading back called the referrers API %d times; want one for the provenance and one for the SBOM; requests: %v", apiCalls, asked)
	}
}

package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/registrytest"
)

var envelope = []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[{"keyid":"k","sig":"c2ln"}]}`)

func basicVersion(t *testing.T, src *memStore) *Version {
	t.Helper()
	release := "image=basic-linux\nversion=1\nname=basic-linux-1\nmethod=fresh\n"
	return &Version{
		Image:   "basic-linux",
		Number:  1,
		SemVer:  "1.0.0-20261201_0000",
		Release: map[string]string{"image": "basic-linux", "version": "1", "name": "basic-linux-1", "method": "fresh", "build_time": "2026-12-01T00:00:00Z"},
		Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC),
		Layers: []Layer{putLayer(t, src, rootfsTar(t, map[string]string{
			"etc/kiln-release": release,
			"etc/os-release":   "ID=debian\n",
		}))},
		Envelope: envelope,
	}
}

func TestPushPullVersion(t *testing.T) {
	ctx := context.Background()
	reg, s := plainStore(t)
	src := newMemStore()
	v := basicVersion(t, src)
	p, err := s.PushVersion(ctx, v, src)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(p.Tags, []string{"1", "1.0.0-20261201_0000"}) || p.Uploaded != v.Layers[0].Size || p.Ref != reg.URL("kiln/basic-linux")+"@"+p.Digest {
		t.Errorf("PushVersion = %+v", p)
	}
	// The same version again is a no-op with the same digest.
	again, err := s.PushVersion(ctx, v, src)
	if err != nil || again.Digest != p.Digest || again.Uploaded != 0 {
		t.Errorf("second PushVersion = %+v, %v; want the same digest and nothing uploaded", again, err)
	}

	for _, ref := range []string{"1", "1.0.0-20261201_0000", p.Digest} {
		got, err := s.PullVersion(ctx, "basic-linux", ref)
		if err != nil {
			t.Fatalf("PullVersion %s: %v", ref, err)
		}
		if got.Digest != p.Digest || got.Number != 1 || got.SemVer != v.SemVer || !got.Created.Equal(v.Created) ||
			!slices.Equal(got.Layers, v.Layers) || !bytes.Equal(got.Envelope, envelope) || got.Release["method"] != "fresh" || len(got.Release) != len(v.Release) {
			t.Errorf("PullVersion %s = %+v", ref, got)
		}
	}

	dst := newMemStore()
	got, err := s.Fetch(ctx, "basic-linux", "1", dst)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.get(got.Layers[0].Digest), src.get(v.Layers[0].Digest)) {
		t.Error("Fetch did not copy the layer")
	}

	// distribution 2.8 has no referrers API: the envelope is found through
	// the sha256-<hex> tag.
	if tags := listTags(t, reg, "kiln/basic-linux"); !slices.Contains(tags, "sha256-"+strings.TrimPrefix(p.Digest, "sha256:")) {
		t.Errorf("tags %v have no referrers fallback tag for %s", tags, p.Digest)
	}

	blobs, err := s.Blobs(ctx, "basic-linux", "1")
	if err != nil {
		t.Fatal(err)
	}
	// manifest, config, layer; envelope manifest, empty config, envelope
	if len(blobs) != 6 || !slices.Contains(blobs, p.Digest) || !slices.Contains(blobs, v.Layers[0].Digest) {
		t.Errorf("Blobs = %v", blobs)
	}

	// A child version uploads only its own layer: the base's is mounted.
	own := putLayer(t, src, rootfsTar(t, map[string]string{"srv/app/README": "appserver\n", "etc/kiln-release": "image=appserver\nversion=1\n"}))
	child := &Version{Image: "appserver", Number: 1, Layers: []Layer{v.Layers[0], own}, MountFrom: []string{"basic-linux"}, Envelope: envelope}
	cp, err := s.PushVersion(ctx, child, src)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Uploaded != own.Size {
		t.Errorf("child push uploaded %d bytes, want its own layer's %d", cp.Uploaded, own.Size)
	}
	pc, err := s.PullVersion(ctx, "appserver", "1")
	if err != nil || len(pc.Layers) != 2 || pc.SemVer != "" {
		t.Fatalf("PullVersion appserver 1 = %+v, %v", pc, err)
	}

	// A number is never reused for other content.
	other := basicVersion(t, src)
	other.SemVer, other.Created = "", other.Created.Add(time.Hour)
	_, err = s.PushVersion(ctx, other, src)
	if kiln.ErrorCode(err) != kiln.ECONFLICT || !strings.Contains(err.Error(), "kiln/basic-linux:1") {
		t.Errorf("pushing other content as basic-linux 1 = %v; want a conflict naming the tag", err)
	}

	// Delete removes the manifest, its tags and its referrers.
	if err := s.DeleteVersion(ctx, "basic-linux", p.Digest); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"1", p.Digest} {
		if _, err := s.PullVersion(ctx, "basic-linux", ref); kiln.ErrorCode(err) != kiln.ENOTFOUND {
			t.Errorf("PullVersion %s after DeleteVersion = %v, want not_found", ref, err)
		}
	}
	if err := s.DeleteVersion(ctx, "basic-linux", p.Digest); err != nil {
		t.Errorf("deleting a deleted version: %v", err)
	}
	// The child still pulls: its layers are its own repository's.
	if _, err := s.Fetch(ctx, "appserver", "1", newMemStore()); err != nil {
		t.Errorf("Fetch of the child after its base was deleted: %v", err)
	}
}

func listTags(t *testing.T, reg *registrytest.Registry, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + reg.Host + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ Tags []string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Tags
}

// A layer corrupted or missing in the registry is refused on pull, and
// nothing of it is kept.
func TestPullVerifiesLayers(t *testing.T) {
	ctx := context.Background()
	reg, s := plainStore(t)
	src := newMemStore()
	v := basicVersion(t, src)
	if _, err := s.PushVersion(ctx, v, src); err != nil {
		t.Fatal(err)
	}
	l := v.Layers[0]
	content := src.get(l.Digest)
	bad := bytes.Clone(content)
	copy(bad[len(bad)-2048:], "corrupted")
	if err := os.WriteFile(blobFile(reg, l.Digest), bad, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := newMemStore()
	_, err := s.Fetch(ctx, "basic-linux", "1", dst)
	if err == nil || !strings.Contains(err.Error(), "is corrupted") || !strings.Contains(err.Error(), l.Digest) || !strings.Contains(err.Error(), reg.URL("kiln/basic-linux")) {
		t.Errorf("Fetch of a corrupted layer = %v; want a corruption error naming the layer and the URL", err)
	}
	if len(dst.m) != 0 {
		t.Errorf("Fetch kept %d artifacts of a corrupted version", len(dst.m))
	}

	if err := os.Remove(blobFile(reg, l.Digest)); err != nil {
		t.Fatal(err)
	}
	_, err = s.Fetch(ctx, "basic-linux", "1", dst)
	if kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "is missing from the registry") || !strings.Contains(err.Error(), "push the version again") {
		t.Errorf("Fetch with a missing layer = %v; want not_found saying what to do", err)
	}
}

// A manifest that is not an OCI image manifest is refused with its type.
func TestPullOtherMediaType(t *testing.T) {
	ctx := context.Background()
	reg, s := plainStore(t)
	index := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`
	req, err := http.NewRequest(http.MethodPut, "http://"+reg.Host+"/v2/kiln/basic-linux/manifests/7", strings.NewReader(index))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT index: %s %s", resp.Status, b)
	}
	_, err = s.PullVersion(ctx, "basic-linux", "7")
	if kiln.ErrorCode(err) != kiln.EINVALID || !strings.Contains(err.Error(), "application/vnd.oci.image.index.v1+json") || !strings.Contains(err.Error(), "not an OCI image manifest") || !strings.Contains(err.Error(), reg.URL("kiln/basic-linux")) {
		t.Errorf("PullVersion of an index = %v; want invalid naming the media type and the URL", err)
	}
	if _, err := s.PullVersion(ctx, "basic-linux", "8"); kiln.ErrorCode(err) != kiln.ENOTFOUND || !strings.Contains(err.Error(), "basic-linux:8") {
		t.Errorf("PullVersion of a missing tag = %v; want not_found naming it", err)
	}
}

// An interrupted push leaves no tag: the tags are the last thing pushed.
func TestInterruptedPushLeavesNoTag(t *testing.T) {
	ctx := context.Background()
	reg, s := plainStore(t)
	src := newMemStore()
	v := basicVersion(t, src)
	// The second layer cannot be read: the push stops after the first.
	v.Layers = append(v.Layers, Layer{Digest: "sha256:" + strings.Repeat("e", 64), Size: 10})
	if _, err := s.PushVersion(ctx, v, src); kiln.ErrorCode(err) != kiln.ENOTFOUND {
		t.Fatalf("PushVersion with an unreadable layer = %v", err)
	}
	if tags := listTags(t, reg, "kiln/basic-linux"); len(tags) != 0 {
		t.Errorf("an interrupted push left tags %v", tags)
	}
}

package oci

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
)

// Other tools read what kiln pushes: skopeo inspects it, skopeo copies it
// to an OCI layout, umoci unpacks that, and /etc/kiln-release is there.
func TestInterop(t *testing.T) {
	skopeo := ci.Tool(t, "skopeo", "skopeo")
	umoci := ci.Tool(t, "umoci", "umoci")
	ctx := context.Background()
	reg, s := plainStore(t)
	src := newMemStore()
	v := basicVersion(t, src)
	if _, err := s.PushVersion(ctx, v, src); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) []byte {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir()) // no user policy or auth files
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return out
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := "docker://" + reg.Host + "/kiln/basic-linux:1"

	var info struct {
		Labels map[string]string
		Layers []string
	}
	if err := json.Unmarshal(run(skopeo, "inspect", "--tls-verify=false", ref), &info); err != nil {
		t.Fatal(err)
	}
	if info.Labels[LabelImage] != "basic-linux" || info.Labels[LabelVersion] != "1" || info.Labels[LabelReleasePrefix+"method"] != "fresh" || len(info.Layers) != 1 || info.Layers[0] != v.Layers[0].Digest {
		t.Errorf("skopeo inspect: labels %v layers %v", info.Labels, info.Layers)
	}

	layout := filepath.Join(t.TempDir(), "layout")
	run(skopeo, "--policy", policy, "copy", "--src-tls-verify=false", ref, "oci:"+layout+":basic-linux-1")
	bundle := filepath.Join(t.TempDir(), "bundle")
	args := []string{"unpack"}
	if os.Geteuid() != 0 {
		args = append(args, "--rootless")
	}
	run(umoci, append(args, "--image", layout+":basic-linux-1", bundle)...)
	got := run("cat", filepath.Join(bundle, "rootfs", "etc", "kiln-release"))
	if !strings.Contains(string(got), "name=basic-linux-1\n") {
		t.Errorf("/etc/kiln-release unpacked by umoci:\n%s", got)
	}
}

// Layers kiln's builds write, gzip (the default) and zstd, pushed as a
// two-layer image: skopeo inspects it with their media types and copies
// it, umoci unpacks it, and kiln pulls it into another store with every
// layer's digest and diff ID verified.
func TestInteropCompressedLayers(t *testing.T) {
	skopeo := ci.Tool(t, "skopeo", "skopeo")
	umoci := ci.Tool(t, "umoci", "umoci")
	ci.Root(t, "writing a root-owned tree as a layer")
	ctx := context.Background()
	reg, s := plainStore(t)
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, c := range layer.Compressions {
		t.Run(string(c), func(t *testing.T) {
			src, err := artifact.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("appserver-%d", i+1)
			tree := func(files map[string]string) string {
				dir := t.TempDir()
				for p, body := range files {
					if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(dir, p), []byte(body), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return dir
			}
			var layers []Layer
			for _, files := range []map[string]string{
				{"etc/os-release": "ID=debian\n", "etc/kiln-release": "name=basic-linux-1\n"},
				{"etc/kiln-release": "image=appserver\nname=" + name + "\n"},
			} {
				l, err := layer.Put(ctx, src, tree(files), layer.WriteOptions{Compression: c})
				if err != nil {
					t.Fatal(err)
				}
				if l.MediaType != c.MediaType() {
					t.Fatalf("a %s layer has media type %s", c, l.MediaType)
				}
				layers = append(layers, Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: l.DiffID})
			}
			v := &Version{Image: "appserver", Number: i + 1, Release: map[string]string{"name": name}, Created: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Layers: layers, Envelope: envelope}
			if _, err := s.PushVersion(ctx, v, src); err != nil {
				t.Fatal(err)
			}
			run := func(name string, args ...string) []byte {
				t.Helper()
				cmd := exec.CommandContext(ctx, name, args...)
				cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
				}
				return out
			}
			ref := fmt.Sprintf("docker://%s/kiln/appserver:%d", reg.Host, i+1)
			var man struct {
				Layers []struct {
					MediaType string
					Digest    string
				}
			}
			if err := json.Unmarshal(run(skopeo, "inspect", "--raw", "--tls-verify=false", ref), &man); err != nil {
				t.Fatal(err)
			}
			if len(man.Layers) != 2 || man.Layers[1].MediaType != c.MediaType() || man.Layers[1].Digest != layers[1].Digest {
				t.Errorf("skopeo inspect --raw: layers %+v; want two %s layers", man.Layers, c.MediaType())
			}
			layout := filepath.Join(t.TempDir(), "layout")
			run(skopeo, "--policy", policy, "copy", "--src-tls-verify=false", ref, "oci:"+layout+":"+name)
			// Debian's umoci (0.4.7) reads gzip layers, not zstd ones.
			if c == layer.Gzip {
				bundle := filepath.Join(t.TempDir(), "bundle")
				run(umoci, "unpack", "--image", layout+":"+name, bundle)
				if got := run("cat", filepath.Join(bundle, "rootfs", "etc", "kiln-release")); !strings.Contains(string(got), "name="+name+"\n") {
					t.Errorf("/etc/kiln-release unpacked by umoci:\n%s", got)
				}
			}

			// kiln pulls it on another machine: each layer verified.
			dst, err := artifact.Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			p, err := s.Fetch(ctx, "appserver", fmt.Sprint(i+1), dst)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range p.Layers {
				rc, err := layer.Open(ctx, dst, kiln.Layer{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size, DiffID: l.diffID()})
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.Copy(io.Discard, rc)
				if cerr := rc.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					t.Errorf("layer %s pulled: %v", l.Digest, err)
				}
			}
		})
	}
}

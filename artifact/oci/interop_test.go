package oci

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln/internal/ci"
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

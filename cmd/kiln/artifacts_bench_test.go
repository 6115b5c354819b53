package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/artifact/oci"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/registrytest"
)

// BenchmarkRegistryFigures measures, for docs/benchmarks.md ("Registry: the
// OCI artifact store"), kiln's push (local store → registry: blob upload
// and image) and pull (registry → local store, verified) of the ~190 MB
// test image against `skopeo copy` of the same image between the same
// endpoints (an OCI layout on the same disk ↔ the same registry, layers
// kept uncompressed and digests preserved, as kiln does), and the
// bytes each side stores (reported as metrics, and printed):
//
//	nice -n 10 go test -run '^$' -bench RegistryFigures -benchtime 1x ./cmd/kiln/
func BenchmarkRegistryFigures(b *testing.B) {
	var t testing.TB = b
	skopeo := ci.Tool(t, "skopeo", "skopeo")
	ctx := context.Background()
	img := releaseImage(t)
	fi, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	sk := func(args ...string) time.Duration {
		t.Helper()
		cmd := exec.Command(skopeo, append([]string{"--policy", policy}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("skopeo %v: %v\n%s", args, err, out)
		}
		return time.Since(start)
	}
	const rounds = 3
	var kPush, sPush, kPull, sPull []time.Duration
	var regBytes, localBytes int64
	for i := range rounds {
		// kiln push: a fresh registry, the artifact in a local store.
		reg := registrytest.Start(t, registrytest.Options{})
		st, err := oci.Open(reg.URL("kiln"), oci.Options{CredentialsFile: noCredentials(t)})
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		local, err := artifact.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		a, err := local.Put(ctx, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := st.PutFrom(ctx, local, a.Digest); err != nil {
			t.Fatal(err)
		}
		if _, err := st.PushVersion(ctx, &oci.Version{Image: "appserver", Number: 1, Layers: []oci.Layer{{Digest: a.Digest, Size: a.Size}}, Envelope: []byte(`{}`)}, local); err != nil {
			t.Fatal(err)
		}
		kPush = append(kPush, time.Since(start))
		regBytes, localBytes = du(t, reg.Dir), du(t, local.Dir())

		// kiln pull: into an empty local store through the read-through
		// store (verified while it streams, then kept).
		other, err := artifact.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		rt := &artifact.ReadThrough{Local: other, Remote: st}
		start = time.Now()
		if err := rt.Pull(ctx, a.Digest); err != nil {
			t.Fatal(err)
		}
		kPull = append(kPull, time.Since(start))

		// skopeo: the same image as an OCI layout on the same disk, to a
		// fresh registry, and back to a fresh layout.
		layout := filepath.Join(t.TempDir(), "layout")
		sk("copy", "--src-tls-verify=false", "--dest-oci-accept-uncompressed-layers", "docker://"+reg.Host+"/kiln/appserver:1", "oci:"+layout+":1")
		reg2 := registrytest.Start(t, registrytest.Options{})
		sPush = append(sPush, sk("copy", "--dest-tls-verify=false", "--preserve-digests", "oci:"+layout+":1", "docker://"+reg2.Host+"/kiln/appserver:1"))
		sPull = append(sPull, sk("copy", "--src-tls-verify=false", "--dest-oci-accept-uncompressed-layers", "docker://"+reg2.Host+"/kiln/appserver:1", "oci:"+filepath.Join(t.TempDir(), "back")+":1"))
		t.Logf("round %d: kiln push %v pull %v; skopeo push %v pull %v", i+1, kPush[i], kPull[i], sPush[i], sPull[i])
	}
	med := func(d []time.Duration) time.Duration { s := slices.Clone(d); slices.Sort(s); return s[len(s)/2] }
	fmt.Printf("image tar %d bytes\n", fi.Size())
	fmt.Printf("push: kiln %v, skopeo copy %v, ratio %.2f\n", med(kPush), med(sPush), float64(med(kPush))/float64(med(sPush)))
	fmt.Printf("pull: kiln %v, skopeo copy %v, ratio %.2f\n", med(kPull), med(sPull), float64(med(kPull))/float64(med(sPull)))
	fmt.Printf("storage: local store %d bytes, registry %d bytes\n", localBytes, regBytes)
	b.ReportMetric(float64(med(kPush))/float64(med(sPush)), "push/skopeo")
	b.ReportMetric(float64(med(kPull))/float64(med(sPull)), "pull/skopeo")
	b.ReportMetric(float64(regBytes), "registry-bytes")
}

func du(t testing.TB, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

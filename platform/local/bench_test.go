package local

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
)

// BenchmarkLaunchChecksDestroy measures what the test stage spends on the
// platform: boot an instance to running, run ten checks (nine commands
// inside and one HTTP request through a forwarded port), destroy it. The
// artifact is already unpacked in the cache.
func BenchmarkLaunchChecksDestroy(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.p.rootfs(ctx, e.art.Digest); err != nil {
		b.Fatal(err)
	}
	checks := [][]string{
		{"test", "-f", "/etc/os-release"},
		{"grep", "-q", "ID=debian", "/etc/os-release"},
		{"dpkg-query", "-W", "busybox"},
		{"systemctl", "is-enabled", "kiln-httpd.service"},
		{"systemctl", "is-active", "kiln-httpd.service"},
		{"id", "root"},
		{"getent", "group", "root"},
		{"test", "-x", ProbePath},
		{"sh", "-c", "test $(stat -c %a /etc/passwd) = 644"},
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		res, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "bench", Artifact: e.art,
			Ports: []kiln.PortForward{{Host: "127.0.0.1:0", Guest: 80}}, Timeout: time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		for _, c := range checks {
			if code, err := e.p.Exec(ctx, id, c, kiln.ExecIO{}); err != nil || code != 0 {
				b.Fatalf("%v: %d %v", c, code, err)
			}
		}
		resp, err := http.Get("http://" + res.Ports[0].Host + "/")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err := e.p.Destroy(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLaunchDestroy is boot to running and destroyed, nothing else.
func BenchmarkLaunchDestroy(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.p.rootfs(ctx, e.art.Digest); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("bench-%d", i)
		if _, err := e.p.Launch(ctx, kiln.LaunchSpec{ID: id, Name: "bench", Artifact: e.art, Timeout: time.Minute}); err != nil {
			b.Fatal(err)
		}
		if err := e.p.Destroy(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnpack measures the one-time unpacking of a new artifact into
// the rootfs cache.
func BenchmarkUnpack(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	for b.Loop() {
		dir := b.TempDir()
		if err := e.p.unpack(ctx, e.art.Digest, dir); err != nil {
			b.Fatal(err)
		}
	}
}

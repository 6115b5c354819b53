package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/registrytest"
	"github.com/kiln-project/kiln/internal/testenv"
)

// A builder with --layer-compression zstd stores every layer it writes as
// zstd (each step's with its whiteouts, the release layer; the origin
// tarball is its first layer as given, its digest the definition's), and
// the version works end to end like a gzip one: verified,
// pushed to a registry and verified from it alone, and launched (its
// layers unpacked) with the step's file there and the deleted one gone.
func TestZstdLayersEndToEnd(t *testing.T) {
	if os.Geteuid() != 0 {
		ci.SkipOrFail(t, "building and booting images needs root")
	}
	origin := testenv.Image(t, "the zstd layers test")
	reg := registrytest.Start(t, registrytest.Options{})
	url := reg.URL("kiln")
	t.Setenv("KILN_NO_AGENT", "1") // the test binary is no agent to bake into images
	t.Setenv("KILN_LAYER_COMPRESSION", "")
	t.Setenv("KILN_ARTIFACTS", "")
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())

	est := t.TempDir()
	originSum := copyOrigin(t, origin, filepath.Join(est, "origin.tar"))
	def := "image \"web\" {\n  origin {\n    source = \"origin.tar\"\n    sha256 = \"" + originSum + "\"\n  }\n" +
		"  shell { inline = [\"echo zstd > /etc/zstd-step\", \"rm -f /etc/motd\"] }\n}\n"
	if err := os.WriteFile(filepath.Join(est, "estate.kiln.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	on := []string{"--layer-compression", "zstd", "--artifacts", url, "--artifacts-credentials", noCredentials(t)}
	mustRun(t, dir, append(on, "build", est)...)
	var v kiln.Version
	if err := json.Unmarshal([]byte(mustRun(t, dir, append(on, "-o", "json", "version", "show", "web-1")...)), &v); err != nil {
		t.Fatal(err)
	}
	a := v.Provenance.Artifact
	if a == nil || len(a.Layers) < 3 {
		t.Fatalf("web-1's artifact %+v; want the origin's, the step's and the release layer", a)
	}
	if got := a.Layers[0].DiffID; got != "sha256:"+originSum {
		t.Errorf("web-1's first layer has diff ID %s; want the origin tarball's", got)
	}
	for i, l := range a.Layers[1:] {
		i++
		if l.MediaType != kiln.LayerMediaTypeZstd {
			t.Errorf("layer %d of web-1 is %s; want %s (--layer-compression zstd)", i+1, l.MediaType, kiln.LayerMediaTypeZstd)
		}
	}
	mustRun(t, dir, append(on, "version", "verify", "web-1")...)

	// From the registry alone: no database, no data directory.
	key := filepath.Join(t.TempDir(), "kiln.pub")
	if err := os.WriteFile(key, []byte(mustRun(t, dir, "key", "export")), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, filepath.Join(t.TempDir(), "none"), "--artifacts-credentials", noCredentials(t),
		"version", "verify", strings.TrimSuffix(url, "/")+"/web:1", "--key", key)
	if !strings.Contains(out, "signature and every layer verified from the registry alone") {
		t.Errorf("verify from the registry alone: %q", out)
	}

	// Launched: the layers are unpacked and stacked.
	webPlatform(t, dir)
	mustRun(t, dir, append(on, "instance", "launch", "web-1", "--name", "zstd-1")...)
	t.Cleanup(func() { _, _, _ = run(t, dir, "instance", "destroy", "zstd-1") })
	rootfs := filepath.Join(dir, "local", "instances", "zstd-1", "rootfs")
	if b, err := os.ReadFile(filepath.Join(rootfs, "etc", "zstd-step")); err != nil || string(b) != "zstd\n" {
		t.Errorf("/etc/zstd-step in the instance: %q, %v; want the step's file", b, err)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "etc", "motd")); !os.IsNotExist(err) {
		t.Errorf("/etc/motd in the instance: %v; the step deleted it (a whiteout in a zstd layer)", err)
	}
}

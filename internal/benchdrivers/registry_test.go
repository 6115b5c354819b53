package benchdrivers

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/ci"
	"github.com/kiln-project/kiln/internal/layer"
)

// The registry the registry measure runs on: a child version's push
// uploads its own layers (and its layer list) only, a pull copies the
// image's layers verified, and a second machine's read-through store
// reads the artifact.
func TestRegistryDriver(t *testing.T) {
	ci.Tool(t, "docker-registry", "docker-registry")
	ci.Root(t, "writing a root-owned tree as a layer")
	ctx := context.Background()
	reg, err := openRegistry(ctx, filepath.Join(t.TempDir(), "not-yet"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	src, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, body string) kiln.Layer {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "etc", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := layer.Put(ctx, src, dir, layer.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	version := func(image string, layers []kiln.Layer, base *kiln.VersionRef) *kiln.Version {
		a, err := layer.PutList(ctx, src, layers)
		if err != nil {
			t.Fatal(err)
		}
		return &kiln.Version{Image: image, Number: 1, Name: image + "-1", CreatedAt: time.Now(), Provenance: kiln.Provenance{Artifact: a, Base: base}}
	}
	bl := put("os-release", "ID=debian\n")
	base := version("basic-linux", []kiln.Layer{bl}, nil)
	own := put("kiln-release", "name=appserver-1\n")
	child := version("appserver", []kiln.Layer{bl, own}, &kiln.VersionRef{Image: "basic-linux", Number: 1})
	if _, err := reg.Push(ctx, base, src); err != nil {
		t.Fatal(err)
	}
	up, err := reg.Push(ctx, child, src)
	if err != nil {
		t.Fatal(err)
	}
	// Its own layer and its layer list (a small JSON document), not the
	// base's layer.
	list, err := src.Stat(ctx, child.Provenance.Artifact.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if up != own.Size+list.Size {
		t.Errorf("pushing the child uploaded %d bytes; its own layer is %d, its layer list %d, the base's layer %d", up, own.Size, list.Size, bl.Size)
	}
	dst, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Pull(ctx, child, dst); err != nil {
		t.Fatal(err)
	}
	for _, l := range []kiln.Layer{bl, own} {
		if _, err := dst.Stat(ctx, l.Digest); err != nil {
			t.Errorf("layer %s not pulled: %v", l.Digest, err)
		}
	}
	rt, err := reg.ReadThrough(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ls, err := layer.Layers(ctx, rt, child.Provenance.Artifact)
	if err != nil || len(ls) != 2 {
		t.Errorf("the second machine reads the child's layers: %v %v", ls, err)
	}
	if n := duBytesForTest(reg.Storage()); n == 0 {
		t.Error("the registry's storage is empty")
	}
}

func duBytesForTest(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

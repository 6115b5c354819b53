package build

import (
	"archive/tar"
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/internal/layer"
)

// TestListLayeredArtifacts: the merged listing of a stack applies each
// layer's whiteouts and opaque directories to the layers below, and a
// single-tar artifact lists as before.
func TestListLayeredArtifacts(t *testing.T) {
	ctx := context.Background()
	arts, err := artifact.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	put := func(entries ...[2]string) kiln.Layer {
		t.Helper()
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, e := range entries {
			h := &tar.Header{Name: e[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e[1])), ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
			if e[0][len(e[0])-1] == '/' {
				h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
			}
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
			if h.Size > 0 {
				if _, err := tw.Write([]byte(e[1])); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		a, err := arts.Put(ctx, &b)
		if err != nil {
			t.Fatal(err)
		}
		return layer.Tar(a)
	}
	bottom := put([2]string{"etc/", ""}, [2]string{"etc/a", "a"}, [2]string{"etc/b", "b"}, [2]string{"opt/", ""}, [2]string{"opt/app/", ""}, [2]string{"opt/app/old", "old"}, [2]string{"srv/", ""}, [2]string{"srv/x/", ""}, [2]string{"srv/x/y", "y"})
	parentTop := put([2]string{"etc/c", "c"})
	childTop := put(
		[2]string{"etc/.wh.a", ""}, // deleted
		[2]string{"etc/b", "B"},    // changed
		[2]string{"opt/app/", ""},  // replaced directory:
		[2]string{"opt/app/.wh..wh..opq", ""},
		[2]string{"opt/app/new", "new"}, // only what this layer puts in it
		[2]string{".wh.srv", ""},        // a directory and what it held
	)
	version := func(name string, ls ...kiln.Layer) *kiln.Version {
		a, err := layer.PutList(ctx, arts, ls)
		if err != nil {
			t.Fatal(err)
		}
		return &kiln.Version{Name: name, Provenance: kiln.Provenance{Artifact: a}}
	}
	parent := version("app-1", bottom, parentTop)
	child := version("app-2", bottom, parentTop, childTop)

	fa, fb, err := listArtifacts(ctx, arts, parent, child)
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]Change{}
	for _, c := range diffFiles(fa, fb) {
		changes[c.Path] = c.Change
	}
	want := map[string]Change{
		"etc/a": Removed, "etc/b": Changed, "opt/app/old": Removed, "opt/app/new": Added,
		"srv": Removed, "srv/x": Removed, "srv/x/y": Removed,
	}
	for p, c := range want {
		if changes[p] != c {
			t.Errorf("%s: %q, want %q", p, changes[p], c)
		}
	}
	if len(changes) != len(want) {
		t.Errorf("changes %v, want %v", changes, want)
	}
	if fb["etc/c"] == nil || fb["opt/app"] == nil || fb["etc/b"].Size != 1 {
		t.Errorf("child listing lacks what the lower layers and its own give: %v", fb)
	}

	// A single-tar artifact against a layered one.
	single := &kiln.Version{Name: "old-1", Provenance: kiln.Provenance{Artifact: &kiln.Artifact{Ref: "local:" + bottom.Digest, Digest: bottom.Digest, Size: bottom.Size}}}
	fs, fp, err := listArtifacts(ctx, arts, single, parent)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffFiles(fs, fp); len(d) != 1 || d[0].Path != "etc/c" || d[0].Change != Added {
		t.Errorf("single tar → layered: %+v, want etc/c added", d)
	}
}

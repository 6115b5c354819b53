package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/debian"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/internal/aptrepotest"
	"github.com/kiln-project/kiln/store"
)

// TestAptSourcePublication: appserver installs kiln-demo from a local
// repository (an apt_source); while the repository serves the Release
// appserver-1 was built from, the checker finds nothing, and once it
// publishes kiln-demo 1.0-2 it gives the "packages" reason that starts
// the image's pipeline.
func TestAptSourcePublication(t *testing.T) {
	ctx := context.Background()
	repo := aptrepotest.New(t)
	repo.Publish(t, "kiln-demo", "1.0-1")
	dir := t.TempDir()
	def := `
image "basic-linux" {
  debian { suite = "bookworm" }
}
image "appserver" {
  base     = image.basic-linux
  packages = ["kiln-demo"]
  apt_source "demo" {
    url     = "` + repo.URL + `"
    suite   = "` + aptrepotest.Suite + `"
    trusted = true
  }
}
`
	if err := os.WriteFile(filepath.Join(dir, "estate.kiln.hcl"), []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	est, diags := definition.Load(dir, definition.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	db, err := store.Open(ctx, "", t.TempDir(), nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	art := &kiln.Artifact{Ref: "local:x", Digest: "sha256:" + strings.Repeat("a", 64)}
	mk := func(img string, srcs []kiln.Source, base *kiln.VersionRef) *kiln.Version {
		t.Helper()
		if _, err := db.FindImage(ctx, img); err != nil {
			if err := db.CreateImage(ctx, &kiln.Image{Name: img}); err != nil {
				t.Fatal(err)
			}
		}
		v, err := db.CreateVersion(ctx, &kiln.NewVersion{Image: img, Provenance: kiln.Provenance{Artifact: art, Sources: srcs, Base: base}})
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range []kiln.Status{kiln.StatusTested, kiln.StatusReady} {
			if _, err := db.SetStatus(ctx, v.Ref(), st, ""); err != nil {
				t.Fatal(err)
			}
		}
		return v
	}
	baseV := mk("basic-linux", nil, nil)
	baseRef := baseV.Ref()
	app := est.Images["appserver"]
	rel, err := debian.FetchRelease(ctx, nil, repo.URL, aptrepotest.Suite)
	if err != nil {
		t.Fatal(err)
	}
	mk("appserver", []kiln.Source{
		{Kind: kiln.SourceDefinition, Ref: app.File, Digest: app.Digest},
		{Kind: kiln.SourceOrigin, Ref: baseRef.String(), Digest: art.Digest},
		{Kind: kiln.SourceConfig, Ref: build.AptSourceRef(app.AptSources[0]), Digest: rel.Digest},
	}, &baseRef)

	c := &Checker{Registry: db, Runs: db}
	status := func() []Reason {
		t.Helper()
		st := &ImageStatus{Image: "appserver"}
		if err := c.check(ctx, est, app, st, map[string]*debian.Release{}); err != nil {
			t.Fatal(err)
		}
		return st.Reasons
	}
	if rs := status(); len(rs) != 0 {
		t.Fatalf("before the publication: %+v; want up to date", rs)
	}
	repo.Publish(t, "kiln-demo", "1.0-2")
	rs := status()
	if len(rs) != 1 || rs[0].Trigger != "packages" || !strings.Contains(rs[0].Message, "apt source demo") || !strings.Contains(rs[0].Message, "published a new Release since appserver-1") {
		t.Fatalf("after publishing 1.0-2: %+v; want one packages reason", rs)
	}
	// The run it queues says which trigger started it.
	if why, ok := rs[0].RunTrigger([]string{"packages"}); !ok || !strings.HasPrefix(why, "packages: apt source demo (") {
		t.Errorf("run trigger %q (%v); want it named by its packages trigger", why, ok)
	}
	if why, ok := rs[0].RunTrigger([]string{"source", "origin"}); ok {
		t.Errorf("a pipeline without the packages trigger queues a run for %q", why)
	}
}

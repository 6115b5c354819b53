package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

// fakeBuilder records a candidate version without building anything.
type fakeBuilder struct{ reg kiln.Registry }

func (b fakeBuilder) Build(ctx context.Context, _ *definition.Estate, img *definition.Image, _ build.Options) (*build.Result, error) {
	v, err := b.reg.CreateVersion(ctx, &kiln.NewVersion{Image: img.Name})
	if err != nil {
		return nil, err
	}
	return &build.Result{Image: img.Name, Version: v}, nil
}

// A run asked for by a token is carried out in its name: the worker's
// status changes, stages and promotions are audited with the token as
// actor, not as the server.
func TestRunActsAsRequester(t *testing.T) {
	db := openDB(t)
	ctx := kiln.WithActor(context.Background(), "local:server")
	dir := t.TempDir()
	origin := []byte("not an image: the builder is a fake")
	sum := sha256.Sum256(origin)
	for name, body := range map[string]string{
		"origin.tar": string(origin),
		"estate.kiln.hcl": "image \"web\" {\n  origin {\n    source = \"origin.tar\"\n    sha256 = \"" + hex.EncodeToString(sum[:]) + "\"\n  }\n}\n\n" +
			"pipeline \"all\" {\n  stages = [\"build\"]\n  environments = [\"dev\"]\n}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	load := func(dir string, vars map[string]string) (*definition.Estate, error) {
		est, diags := definition.Load(dir, definition.Options{Vars: vars})
		if diags.HasErrors() {
			return nil, diags
		}
		return est, nil
	}
	est, err := load(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if img, env := pipeline.AutoDelivery(est, nil); img != "web" || env != "dev" {
		t.Fatalf("AutoDelivery = %q %q, want web dev", img, env)
	}
	if err := db.CreateImage(ctx, &kiln.Image{Name: "web"}); err != nil {
		t.Fatal(err)
	}
	runs, err := pipeline.EnqueueFor(ctx, db, est, nil, nil, "api by token:ci", false, "token:ci")
	if err != nil {
		t.Fatal(err)
	}
	if runs[0].RequestedBy != "token:ci" {
		t.Fatalf("run requested by %q", runs[0].RequestedBy)
	}
	r := &pipeline.Runner{Store: db, Registry: db, Builder: fakeBuilder{db}, LoadEstate: load, Poll: 10 * time.Millisecond}
	if err := r.Wait(ctx, []int64{runs[0].ID}); err != nil {
		t.Fatal(err)
	}
	run, err := db.FindRun(ctx, runs[0].ID)
	if err != nil || run.Status != kiln.RunSucceeded || run.RequestedBy != "token:ci" {
		t.Fatalf("run: %+v %v", run, err)
	}
	es, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range es {
		switch e.Action {
		case "version.create", "version.status", "channel.promote", "run.stage", "run.succeeded":
			seen[e.Action] = true
			if e.Actor != "token:ci" {
				t.Errorf("%s %s by %s, want token:ci", e.Action, e.Target, e.Actor)
			}
		}
	}
	for _, a := range []string{"version.status", "channel.promote", "run.succeeded"} {
		if !seen[a] {
			t.Errorf("no %s entry: the test saw too little", a)
		}
	}
}

package pipeline_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/build"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/pipeline"
)

// barrierBuilder is fakeBuilder whose builds of the images in wait block
// until all of them have started (or the test's deadline passes): it
// shows that they ran at the same time, and the base before them.
type barrierBuilder struct {
	fakeBuilder
	mu      sync.Mutex
	started []string
	wait    map[string]bool
	all     chan struct{}
}

func (b *barrierBuilder) Build(ctx context.Context, est *definition.Estate, img *definition.Image, opts build.Options) (*build.Result, error) {
	b.mu.Lock()
	b.started = append(b.started, img.Name)
	n := 0
	for _, s := range b.started {
		if b.wait[s] {
			n++
		}
	}
	if n == len(b.wait) {
		close(b.all)
	}
	b.mu.Unlock()
	if b.wait[img.Name] {
		select {
		case <-b.all:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
			return nil, kiln.Errorf(kiln.ECONFLICT, "%s built alone: the others did not start meanwhile", img.Name)
		}
	}
	return b.fakeBuilder.Build(ctx, est, img, opts)
}

// With Parallel 2 the two images built on a base build at the same time
// once the base's run has ended, each run held under its own worker name;
// every run succeeds.
func TestParallelRunsAfterBase(t *testing.T) {
	db := openDB(t)
	ctx := context.Background()
	dir := t.TempDir()
	origin := []byte("not an image: the builder is a fake")
	sum := sha256.Sum256(origin)
	hcl := "image \"base\" {\n  origin {\n    source = \"origin.tar\"\n    sha256 = \"" + hex.EncodeToString(sum[:]) + "\"\n  }\n}\n" +
		"image \"a\" {\n  base = image.base\n}\nimage \"b\" {\n  base = image.base\n}\n" +
		"pipeline \"all\" {\n  stages = [\"build\"]\n}\n"
	for name, body := range map[string]string{"origin.tar": string(origin), "estate.kiln.hcl": hcl} {
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
	for _, n := range est.Order {
		if err := db.CreateImage(ctx, &kiln.Image{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := pipeline.Enqueue(ctx, db, est, nil, nil, "test", false)
	if err != nil {
		t.Fatal(err)
	}
	b := &barrierBuilder{fakeBuilder: fakeBuilder{db}, wait: map[string]bool{"a": true, "b": true}, all: make(chan struct{})}
	r := &pipeline.Runner{Store: db, Registry: db, Builder: b, LoadEstate: load, Poll: 10 * time.Millisecond, Parallel: 2}
	ids := []int64{runs[0].ID, runs[1].ID, runs[2].ID}
	if err := r.Wait(ctx, ids); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(b.started, " "); !strings.HasPrefix(got, "base ") {
		t.Fatalf("builds started in order %q, want base first", got)
	}
	for _, id := range ids {
		run, err := db.FindRun(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if run.Status != kiln.RunSucceeded {
			t.Errorf("run %d of %s: %s (%s)", run.ID, run.Image, run.Status, run.Reason)
		}
	}
	es, err := db.ListAudit(ctx, kiln.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	workers := map[string]bool{}
	for _, e := range es {
		if e.Action == "run.start" && !strings.HasPrefix(e.Detail, "base ") {
			_, w, _ := strings.Cut(e.Detail, " on worker ")
			workers[w] = true
		}
	}
	if len(workers) != 2 {
		t.Errorf("a and b were held by workers %v, want two slots", workers)
	}
}

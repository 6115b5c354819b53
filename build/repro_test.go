package build

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/artifact"
	"github.com/kiln-project/kiln/definition"
	"github.com/kiln-project/kiln/sign"
	"github.com/kiln-project/kiln/store"
)

// TestFreshBakeTwiceIdentical bakes the example estate's basic-linux
// fresh in two data directories that share nothing (no step cache, no
// package cache, two registries) and wants the same artifact digest; then
// rebuilds the first version from its provenance with --check.
func TestFreshBakeTwiceIdentical(t *testing.T) {
	needBuilder(t) // root and tools, or skip/fail
	// Two isolated builders: the shared one has versions of other tests,
	// and the version number is part of the image (/etc/kiln-release).
	b1 := isolatedBuilder(t)
	est, diags := definition.Load(filepath.Join("..", "examples", "estate"), definition.Options{})
	if diags.HasErrors() {
		t.Fatal(definition.FormatDiagnostics(diags))
	}
	ctx := context.Background()
	b2 := isolatedBuilder(t)
	var digests []string
	var arts []*kiln.Artifact
	for i, b := range []*Builder{b1, b2} {
		res := build(t, b, est, "basic-linux", Options{NoCache: true, Force: true})
		v := res.Version
		if v.Provenance.SourceDateEpoch == 0 || v.Provenance.SourceDateEpochFrom == "" {
			t.Fatalf("bake %d: no SOURCE_DATE_EPOCH in the provenance: %+v", i+1, v.Provenance)
		}
		t.Logf("bake %d: %s %s (SOURCE_DATE_EPOCH %d from %s)", i+1, v.Name, v.Provenance.Artifact.Digest, v.Provenance.SourceDateEpoch, v.Provenance.SourceDateEpochFrom)
		digests = append(digests, v.Provenance.Artifact.Digest)
		arts = append(arts, v.Provenance.Artifact)
		if i == 1 && digests[0] != digests[1] {
			first, err := b1.Registry.LatestVersion(ctx, "basic-linux", "")
			if err != nil {
				t.Fatal(err)
			}
			rep := &RebuildReport{Recorded: digests[0], Rebuilt: digests[1], recorded: arts[0], rebuilt: arts[1]}
			r := &run{b: &Builder{Artifacts: multiStore{b1.Artifacts, b2.Artifacts}}}
			if err := r.compareArtifacts(ctx, rep, 40); err != nil {
				t.Fatal(err)
			}
			t.Fatalf("two fresh bakes of basic-linux differ (%s vs %s):\n%s", first.Name, v.Name, rep.summary(40))
		}
	}
	first, err := b1.Registry.LatestVersion(ctx, "basic-linux", "")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := b1.Rebuild(ctx, est, first.Ref(), RebuildOptions{Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.String())
	if !rep.Identical {
		t.Fatalf("rebuild --check of %s: different", first.Name)
	}
}

// TestRebuildCheckNamesNonDeterministicStep rebuilds a version whose
// script step writes the time into /etc/stamp: the check reports
// different and names /etc/stamp and the step.
func TestRebuildCheckNamesNonDeterministicStep(t *testing.T) {
	b := needBuilder(t)
	est := estate(t, t.TempDir(), map[string]string{
		"stamp.kiln.hcl": `
image "stamp" {
` + debianBlock + `
  shell {
    inline = ["date +%s%N > /etc/stamp"]
  }
}
`,
	})
	res := build(t, b, est, "stamp", Options{})
	rep, err := b.Rebuild(context.Background(), est, res.Version.Ref(), RebuildOptions{Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	out := rep.String()
	t.Log(out)
	if rep.Identical {
		t.Fatal("a step writing the time rebuilt identical")
	}
	var stamp *FileDiff
	for i := range rep.Files {
		if rep.Files[i].Path == "etc/stamp" {
			stamp = &rep.Files[i]
		}
	}
	if stamp == nil || stamp.What[0] != "content" || !strings.HasPrefix(stamp.Step, "shell (stamp.kiln.hcl:") {
		t.Fatalf("etc/stamp not reported as changed by the shell step: %+v", rep.Files)
	}
	if len(rep.Files) != 1 {
		t.Errorf("only /etc/stamp should differ, got %+v", rep.Files)
	}
	if !strings.Contains(out, "/etc/stamp  content  (written by shell (stamp.kiln.hcl:") {
		t.Errorf("report does not name the file and the step:\n%s", out)
	}
	if _, err := b.Artifacts.Stat(context.Background(), res.Version.Provenance.Artifact.Digest); err != nil {
		t.Errorf("the recorded artifact is gone after the check: %v", err)
	}
	if _, err := b.Artifacts.Stat(context.Background(), rep.Rebuilt); err == nil {
		t.Errorf("the rebuilt artifact %s was kept", rep.Rebuilt)
	}
}

// isolatedBuilder is a Builder on a data directory of its own.
func isolatedBuilder(t *testing.T) *Builder {
	t.Helper()
	dir, err := os.MkdirTemp("", "kiln-build-test-2-")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg, err := store.Open(ctx, "", dir, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	arts, err := artifact.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		reg.Close()
		if _, err := Cleanup(context.Background(), dir, arts, nil); err != nil {
			t.Log("cleanup:", err)
		}
		os.RemoveAll(dir)
	})
	return &Builder{Registry: reg, Artifacts: arts, DataDir: dir,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), SBOM: sign.NewSigner(key)}
}

// multiStore opens an artifact from the first store that has it.
type multiStore struct {
	kiln.ArtifactStore
	second kiln.ArtifactStore
}

func (m multiStore) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	rc, err := m.ArtifactStore.Open(ctx, digest)
	if err != nil {
		return m.second.Open(ctx, digest)
	}
	return rc, nil
}

package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/definition"
)

// sources lists a build's inputs: the definition file, every file and
// script its steps use, and the estate's git commit when it is in a
// repository. The origin is added by the caller.
func sources(ctx context.Context, est *definition.Estate, img *definition.Image) ([]kiln.Source, error) {
	srcs := []kiln.Source{{Kind: kiln.SourceDefinition, Ref: img.File, Digest: img.Digest}}
	seen := map[string]bool{}
	// The digests are those recorded when the estate loaded: the steps
	// read each file against them, so what the provenance names is what
	// went into the image.
	add := func(rel, digest string) {
		if seen[rel] {
			return
		}
		seen[rel] = true
		srcs = append(srcs, kiln.Source{Kind: kiln.SourceConfig, Ref: rel, Digest: digest})
	}
	for _, st := range img.Steps {
		switch st.Kind {
		case definition.StepFile:
			add(st.Source, st.SourceDigest)
		case definition.StepShell:
			for i, s := range st.Scripts {
				add(s, st.ScriptDigests[i])
			}
		}
	}
	if est != nil && est.Dir != "" {
		if ref := gitRef(ctx, est.Dir); ref != "" {
			srcs = append(srcs, kiln.Source{Kind: kiln.SourceOther, Ref: ref})
		}
	}
	return srcs, nil
}

// gitRef returns "git:<commit>" (with "-dirty" when the estate directory
// has uncommitted changes) or "" when dir is not in a git work tree.
func gitRef(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	ref := "git:" + strings.TrimSpace(string(out))
	st, err := exec.CommandContext(ctx, "git", "-C", dir, "status", "--porcelain", "--", ".").Output()
	if err == nil && len(strings.TrimSpace(string(st))) > 0 {
		ref += "-dirty"
	}
	return ref
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return readerDigest(f)
}

// readerDigest is the "sha256:<hex>" digest of what r holds.
func readerDigest(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// sameInputs reports whether a recorded version was made from the same
// definition, files, scripts and origin (the git commit does not count:
// committing an unrelated file changes nothing in the image).
func sameInputs(p *kiln.Provenance, srcs []kiln.Source, base *kiln.VersionRef) bool {
	if (p.Base == nil) != (base == nil) || (base != nil && *p.Base != *base) {
		return false
	}
	key := func(list []kiln.Source) []string {
		var out []string
		for _, s := range list {
			if s.Kind == kiln.SourceOther {
				continue
			}
			out = append(out, string(s.Kind)+"|"+s.Ref+"|"+s.Digest)
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(key(p.Sources), key(srcs))
}

// Release-file keys kiln writes in /etc/kiln-release; other lines a step
// wrote (role=appserver) are kept.
// build_time was written by kiln before reproducible bakes and is dropped
// when found (the provenance records when a version was built).
var releaseKeys = []string{"image", "version", "name", "semver", "build_time", "source_date_epoch", "definition_digest", "method", "parent", "base"}

type releaseInfo struct {
	image, semver, defDigest, method string
	number                           int
	// epoch is the build's SOURCE_DATE_EPOCH: nothing that changes from
	// one bake of the same inputs to the next is written.
	epoch        time.Time
	parent, base *kiln.VersionRef
}

// releaseFile returns the new /etc/kiln-release given the old content.
func releaseFile(old []byte, ri releaseInfo) []byte {
	managed := map[string]bool{}
	for _, k := range releaseKeys {
		managed[k] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "image=%s\nversion=%d\nname=%s-%d\n", ri.image, ri.number, ri.image, ri.number)
	if ri.semver != "" {
		fmt.Fprintf(&b, "semver=%s-%s\n", ri.semver, ri.epoch.UTC().Format(kiln.BuildStampLayout))
	}
	fmt.Fprintf(&b, "source_date_epoch=%d\ndefinition_digest=%s\nmethod=%s\n", ri.epoch.Unix(), ri.defDigest, ri.method)
	if ri.parent != nil {
		fmt.Fprintf(&b, "parent=%s\n", ri.parent)
	}
	if ri.base != nil {
		fmt.Fprintf(&b, "base=%s\n", ri.base)
	}
	for _, line := range strings.Split(string(old), "\n") {
		k, _, ok := strings.Cut(line, "=")
		if line == "" || (ok && managed[strings.TrimSpace(k)]) {
			continue
		}
		b.WriteString(line + "\n")
	}
	return []byte(b.String())
}

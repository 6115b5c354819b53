package definition

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/hcl/v2"
)

// fileDigest returns "sha256:…" of a file's content, reading each file once
// per load.
func (l *loader) fileDigest(path string) (string, error) {
	if d, ok := l.digests[path]; ok {
		return d, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	d := "sha256:" + hex.EncodeToString(h.Sum(nil))
	l.digests[path] = d
	return d, nil
}

// namedDigest is a referenced file as it enters a digest: the name written
// in the definition and the content's digest.
type namedDigest struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// stepDigest fills st.Digest. The digest input is a JSON document, so that
// every field is delimited and no two different steps encode alike.
func (l *loader) stepDigest(st *Step) *hcl.Diagnostic {
	st.Dir = l.dir
	in := struct {
		Kind        StepKind          `json:"kind"`
		Source      string            `json:"source,omitempty"`
		Destination string            `json:"destination,omitempty"`
		Mode        uint32            `json:"mode,omitempty"`
		Owner       string            `json:"owner,omitempty"`
		Inline      []string          `json:"inline,omitempty"`
		Scripts     []namedDigest     `json:"scripts,omitempty"`
		Env         map[string]string `json:"env,omitempty"`
	}{Kind: st.Kind, Inline: st.Inline, Env: st.Env}
	switch st.Kind {
	case StepFile:
		d, err := l.fileDigest(st.Path)
		if err != nil {
			return rangeError(st.Range, "Cannot read file", fmt.Sprintf("%s; check that the file is readable.", err))
		}
		// The content counts, not the source's name: renaming a file in
		// the estate does not change what lands in the image.
		in.Source, st.SourceDigest = d, d
		in.Destination, in.Mode, in.Owner = st.Destination, st.Mode, st.Owner
	case StepShell:
		for i, p := range st.ScriptPaths {
			d, err := l.fileDigest(p)
			if err != nil {
				return rangeError(st.Range, "Cannot read script", fmt.Sprintf("%s; check that the script is readable.", err))
			}
			in.Scripts = append(in.Scripts, namedDigest{Name: st.Scripts[i], Digest: d})
			st.ScriptDigests = append(st.ScriptDigests, d)
		}
	}
	st.Digest = jsonDigest(in)
	return nil
}

// imageDigest fills d.img.Digest; the base image's digest must be known.
func (l *loader) imageDigest(d *imageDecl, base *Image) hcl.Diagnostics {
	img := d.img
	var diags hcl.Diagnostics
	in := struct {
		Block       string            `json:"block"`
		Description string            `json:"description,omitempty"`
		Version     string            `json:"version,omitempty"`
		Method      string            `json:"method"`
		Debian      *Debian           `json:"debian,omitempty"`
		Base        *BaseRef          `json:"base,omitempty"`
		BaseDigest  string            `json:"base_digest,omitempty"`
		Artifact    *OriginArtifact   `json:"artifact,omitempty"`
		Packages    []string          `json:"packages,omitempty"`
		Purge       []string          `json:"purge,omitempty"`
		Tags        map[string]string `json:"tags,omitempty"`
		Steps       []string          `json:"steps"`
		Tests       []namedDigest     `json:"tests,omitempty"`
		TestVars    []namedDigest     `json:"test_vars,omitempty"`
		Volatile    []string          `json:"volatile,omitempty"`
	}{
		Block: bytesDigest(d.src), Description: img.Description, Version: img.Version, Method: img.Method,
		Debian: img.Debian, Base: img.Base, Packages: img.Packages, Purge: img.Purge, Tags: img.Tags,
		Steps: []string{}, Volatile: img.Volatile,
	}
	if img.Artifact != nil {
		// The local path is machine-specific; Source and Digest say it all.
		in.Artifact = &OriginArtifact{Source: img.Artifact.Source, Digest: img.Artifact.Digest}
	}
	if base != nil {
		in.BaseDigest = base.Digest
	}
	for i := range img.Steps {
		if diag := l.stepDigest(&img.Steps[i]); diag != nil {
			diags = append(diags, diag)
		}
		in.Steps = append(in.Steps, img.Steps[i].Digest)
	}
	for i, p := range img.TestPaths {
		dg, err := l.fileDigest(p)
		if err != nil {
			diags = append(diags, rangeError(img.Range, "Cannot read test file", fmt.Sprintf("%s; check that the file is readable.", err)))
			continue
		}
		in.Tests = append(in.Tests, namedDigest{Name: img.Tests[i], Digest: dg})
	}
	for i, p := range img.TestVarsPaths {
		dg, err := l.fileDigest(p)
		if err != nil {
			diags = append(diags, rangeError(img.Range, "Cannot read test vars file", fmt.Sprintf("%s; check that the file is readable.", err)))
			continue
		}
		in.TestVars = append(in.TestVars, namedDigest{Name: img.TestVars[i], Digest: dg})
	}
	img.Digest = jsonDigest(in)
	return diags
}

func bytesDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func jsonDigest(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("definition: digest input does not encode: %v", err)) // only plain types: cannot happen
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

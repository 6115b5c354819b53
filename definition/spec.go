package definition

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/kiln-project/kiln"
)

// Estate is every image definition found in one directory of *.kiln.hcl
// files, validated and with variables and locals evaluated.
type Estate struct {
	// Dir is the estate directory, absolute.
	Dir string
	// Files lists the definition files read, sorted, relative to Dir.
	Files []string
	// Images by name.
	Images map[string]*Image
	// Order lists image names so that a base comes before the images built
	// on it; images that are ready at the same time are in name order.
	Order []string
	// Variables by name, with the values the images were evaluated with.
	Variables map[string]*Variable
	// Pipelines by name (pipeline.go); PipelineFor finds an image's.
	Pipelines map[string]*Pipeline
	// Services by name (service.go), with their rollout policies.
	Services map[string]*Service
	// Environments are the top-level environment blocks by name
	// (environment.go): how kiln serve looks after each.
	Environments map[string]*EnvironmentPolicy
}

// Image is one `image "NAME"` block.
type Image struct {
	Name string
	// Description is optional free text, shown with the image line.
	Description string
	// File is the definition file (relative to the estate dir) and Range
	// where the block is (from "image" to its closing brace), for messages.
	File  string
	Range hcl.Range
	// Digest is "sha256:…" over the block's source text, the values it
	// evaluated to (so a changed variable counts), its steps' digests, its
	// test files' content and its base image's Digest: any change to what
	// defines the image changes it.
	Digest string

	// Exactly one origin: Debian (fresh bake from packages), Base (build on
	// another image line) or Artifact (an external origin artifact).
	Debian   *Debian
	Base     *BaseRef
	Artifact *OriginArtifact

	// Method is "fresh" or "reheat" (default fresh).
	Method string
	// Version is an optional semantic version, "1.0.4".
	Version string
	Tags    map[string]string

	// Packages to install and to purge, in addition to the origin's.
	Packages []string
	Purge    []string
	// Steps are file and shell provisioners, in the order written.
	Steps []Step
	// AptSources are more repositories the apt step installs from
	// (aptsource.go).
	AptSources []*AptSource
	// Tests are goss-style YAML files, relative to the estate dir, and
	// TestPaths the same files resolved to absolute paths.
	Tests     []string
	TestPaths []string
	// TestVars are goss vars files (YAML or JSON mappings) whose values the
	// test files' Go templates see as .Vars, merged in order, and
	// TestVarsPaths the same files resolved to absolute paths.
	TestVars      []string
	TestVarsPaths []string
	// Volatile are patterns of paths the image's services write at run time
	// (nginx's /var/lib/nginx): drift detection counts changes there but
	// does not report them. Its own, as written; Estate.Volatile adds the
	// bases'.
	Volatile []string
	// Formats are the artifacts each build makes, rootfs first (always
	// made, the default) and then the disk images declared (qcow2, raw).
	Formats []kiln.ArtifactFormat
}

// DiskFormats returns the disk image formats the image declares.
func (img *Image) DiskFormats() []kiln.ArtifactFormat {
	var out []kiln.ArtifactFormat
	for _, f := range img.Formats {
		if f.Disk() {
			out = append(out, f)
		}
	}
	return out
}

// Debian says how to bootstrap from Debian packages with mmdebstrap.
type Debian struct {
	Suite      string   // e.g. bookworm
	Mirror     string   // e.g. http://deb.debian.org/debian
	Variant    string   // mmdebstrap variant, e.g. minbase
	Components []string // e.g. main
}

// BaseRef points at another image line's version to build on.
type BaseRef struct {
	Image string
	// Number pins a version; 0 means the latest ready version.
	Number int
}

// OriginArtifact is an externally made root filesystem tarball.
type OriginArtifact struct {
	// Source is a path (relative to the estate dir) or an http(s) URL.
	Source string
	// Path is Source resolved to an absolute path; empty for a URL.
	Path   string
	Digest string // "sha256:…", required
}

// StepKind distinguishes provisioners.
type StepKind string

const (
	StepFile  StepKind = "file"
	StepShell StepKind = "shell"
)

// Step is one provisioner.
type Step struct {
	Kind  StepKind
	Range hcl.Range

	// file: Source (relative to the estate dir, resolved to Path) copied
	// to Destination inside the image with Mode (e.g. 0644) and Owner
	// ("root:root").
	Source      string
	Path        string
	Destination string
	Mode        uint32
	Owner       string

	// shell: either Inline commands or Script files (relative to the estate
	// dir, resolved to ScriptPaths), run inside the image with /bin/sh -e.
	Inline      []string
	Scripts     []string
	ScriptPaths []string
	// Env adds environment variables for the shell step.
	Env map[string]string

	// Dir is the estate directory Path and ScriptPaths lie beneath;
	// SourceDigest and ScriptDigests are their contents' digests when the
	// estate loaded. A build reads them with OpenEstateFile, which refuses
	// a file that left the estate or changed since.
	Dir           string
	SourceDigest  string
	ScriptDigests []string

	// Digest is "sha256:…" of everything that makes the step: its kind;
	// for a file the source's bytes (not its name), destination, mode and
	// owner; for a shell step the inline commands or each script's name and
	// bytes, and env. The step cache key part that comes from the
	// definition.
	Digest string
}

package kiln

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// VersionRef names one version of one image line: {appserver 3} is shown as
// "appserver-3".
type VersionRef struct {
	Image  string `json:"image"`
	Number int    `json:"number"`
}

func (r VersionRef) String() string { return fmt.Sprintf("%s-%d", r.Image, r.Number) }

// IsZero reports whether r names nothing.
func (r VersionRef) IsZero() bool { return r.Image == "" && r.Number == 0 }

// ParseVersionRef parses "appserver-3". The number is after the last dash.
func ParseVersionRef(field, s string) (VersionRef, error) {
	i := strings.LastIndexByte(s, '-')
	if i <= 0 || i == len(s)-1 {
		return VersionRef{}, FieldErrorf(EINVALID, field, "%q is not a version name; write IMAGE-N, e.g. appserver-3", s)
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil || n < 1 || s[i+1] == '0' {
		return VersionRef{}, FieldErrorf(EINVALID, field, "%q is not a version name; the part after the last dash must be a version number ≥ 1, e.g. appserver-3", s)
	}
	if err := ValidateImageName(s[:i]); err != nil {
		return VersionRef{}, FieldErrorf(EINVALID, field, "%q is not a version name: image part %q is not a valid image name", s, s[:i])
	}
	return VersionRef{Image: s[:i], Number: n}, nil
}

// Version is one build of an image line.
type Version struct {
	ID     int64  `json:"-"`
	Image  string `json:"image"`
	Number int    `json:"number"`
	// Name is the display name, "<image>-<number>".
	Name string `json:"name"`
	// SemVer is an optional semantic version ("1.0.4"); shown with BuildStamp
	// as "1.0.4-20200229_0420".
	SemVer     string     `json:"semver,omitempty"`
	Status     Status     `json:"status"`
	Tags       Tags       `json:"tags"`
	Provenance Provenance `json:"provenance"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	// Revocation says why, when and by whom a revoked version was revoked
	// (nil when it is not revoked, or was revoked before kiln kept it).
	Revocation *Revocation `json:"revocation,omitempty"`
}

// Ref returns the version's reference.
func (v *Version) Ref() VersionRef { return VersionRef{Image: v.Image, Number: v.Number} }

// BuildStampLayout formats the UTC build stamp of a semantic version.
const BuildStampLayout = "20060102_1504"

// FullSemVer returns "1.0.4-20200229_0420", or "" when no semantic version is set.
func (v *Version) FullSemVer() string {
	if v.SemVer == "" {
		return ""
	}
	return v.SemVer + "-" + v.CreatedAt.UTC().Format(BuildStampLayout)
}

var semverRE = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// ValidateSemVer checks a MAJOR.MINOR.PATCH version; kiln adds the build stamp.
func ValidateSemVer(field, s string) error {
	if !semverRE.MatchString(s) {
		return FieldErrorf(EINVALID, field, "%q is not a semantic version; write MAJOR.MINOR.PATCH, e.g. 1.0.4 (kiln appends the build stamp)", s)
	}
	return nil
}

// NewVersion is what a build (or a user) records.
type NewVersion struct {
	Image      string
	SemVer     string
	Tags       Tags // free-form tags only
	Provenance Provenance
	// Seal, when set, is called inside the registering transaction with
	// the complete version (number assigned); the attachment it returns
	// (the signed provenance) is stored in the same transaction, so no
	// version is ever recorded without it. A nil attachment keeps nothing.
	Seal func(v *Version) (*Attachment, error) `json:"-"`
}

// Validate checks everything that can be checked without the database.
func (nv *NewVersion) Validate() error {
	if err := ValidateImageName(nv.Image); err != nil {
		return err
	}
	if nv.SemVer != "" {
		if err := ValidateSemVer("semver", nv.SemVer); err != nil {
			return err
		}
	}
	if len(nv.Tags) > MaxTags {
		return FieldErrorf(EINVALID, "tags", "%d tags given; the limit is %d", len(nv.Tags), MaxTags)
	}
	for k, v := range nv.Tags {
		if err := ValidateTag("tags", k, v); err != nil {
			return err
		}
	}
	p := &nv.Provenance
	if p.Method == "" {
		p.Method = MethodFresh
	}
	if _, err := ParseMethod("method", string(p.Method)); err != nil {
		return err
	}
	if p.Method == MethodReheat && p.Parent == nil {
		return FieldErrorf(EINVALID, "parent", "a reheated version needs its parent version; give --parent %s-N", nv.Image)
	}
	if p.Method == MethodFresh && p.Parent != nil {
		return FieldErrorf(EINVALID, "parent", "a fresh bake has no parent version; drop the parent or use method reheat")
	}
	if p.Method == MethodExternal && p.Parent != nil {
		return FieldErrorf(EINVALID, "parent", "an external version has no parent version; kiln did not build it")
	}
	if p.Parent != nil && p.Parent.Image != nv.Image {
		return FieldErrorf(EINVALID, "parent", "parent %s is of another image; a reheat starts from a version of %s (use base for another image line)", p.Parent, nv.Image)
	}
	if p.Base != nil && p.Base.Image == nv.Image {
		return FieldErrorf(EINVALID, "base", "base %s is of the same image; a base is a version of another image line (use parent with reheat)", p.Base)
	}
	for i, s := range p.Sources {
		if err := s.Validate(fmt.Sprintf("sources[%d]", i)); err != nil {
			return err
		}
	}
	if err := ValidatePackages("packages", p.Packages); err != nil {
		return err
	}
	if a := p.Artifact; a != nil {
		if a.Ref == "" {
			return FieldErrorf(EINVALID, "artifact.ref", "artifact reference is empty")
		}
		// Only an external artifact (a Packer AMI) may lack a digest: it
		// is a reference, not content kiln holds.
		if a.Digest != "" || p.Method != MethodExternal {
			if err := ValidateDigest("artifact.digest", a.Digest); err != nil {
				return err
			}
		}
		for i, l := range a.Layers {
			if err := l.Validate(fmt.Sprintf("artifact.layers[%d]", i)); err != nil {
				return err
			}
		}
		if a.Format != "" && a.Format != FormatRootfs {
			return FieldErrorf(EINVALID, "artifact.format", "the version's artifact is its root filesystem; record a %s disk image under artifacts", a.Format)
		}
	}
	seen := map[ArtifactFormat]bool{}
	for i, a := range p.Artifacts {
		field := fmt.Sprintf("artifacts[%d]", i)
		if p.Artifact == nil || p.Artifact.External() {
			return FieldErrorf(EINVALID, field, "further artifacts (disk images) are built from the version's root filesystem artifact, which this version does not have")
		}
		if !a.Format.Disk() {
			return FieldErrorf(EINVALID, field+".format", "further artifact format %q is not a disk format; use qcow2 or raw", a.Format)
		}
		if seen[a.Format] {
			return FieldErrorf(EINVALID, field+".format", "format %s is listed twice; a version has at most one artifact per format", a.Format)
		}
		seen[a.Format] = true
		if a.Ref == "" {
			return FieldErrorf(EINVALID, field+".ref", "artifact reference is empty")
		}
		if err := ValidateDigest(field+".digest", a.Digest); err != nil {
			return err
		}
	}
	return nil
}

// Artifact returns the version's artifact of format f: the root filesystem
// for FormatRootfs, else the disk image of that format. ENOTFOUND names
// the version and says how to get one.
func (v *Version) Artifact(f ArtifactFormat) (*Artifact, error) {
	p := &v.Provenance
	if f == FormatRootfs || f == "" {
		if p.Artifact == nil {
			return nil, Errorf(ENOTFOUND, "%s has no artifact recorded; only built versions have one", v.Ref())
		}
		return p.Artifact, nil
	}
	for i := range p.Artifacts {
		if p.Artifact != nil && p.Artifacts[i].Format == f {
			return &p.Artifacts[i], nil
		}
	}
	if !f.Disk() {
		return nil, FieldErrorf(EINVALID, "format", "unknown artifact format %q; use rootfs, qcow2 or raw", f)
	}
	return nil, Errorf(ENOTFOUND, "%s has no %s disk image; add formats = [\"rootfs\", \"%s\"] to its image line and build again", v.Ref(), f, f)
}

// Exportable returns v's artifact of format f for export (`kiln version
// export`, the API's export route), refusing revoked versions and external
// ones (which kiln does not hold); a missing format names the ones v has.
func (v *Version) Exportable(f ArtifactFormat) (*Artifact, error) {
	if v.Revoked() {
		why := ""
		if r := v.Revocation; r != nil {
			why = " (" + r.Reason + ")"
			if r.Through != nil {
				why = fmt.Sprintf(" through %s (%s)", r.Through, r.Reason)
			}
		}
		return nil, Errorf(ECONFLICT, "refusing to export: %s is revoked%s and must not be deployed anywhere; pick another version (`kiln version latest %s`) or restore it first", v.Name, why, v.Image)
	}
	if a := v.Provenance.Artifact; a == nil || a.External() {
		what := "no artifact recorded"
		if a != nil {
			what = "an external artifact (" + a.Ref + "), which kiln did not build and does not hold"
		}
		return nil, Errorf(EINVALID, "%s has %s; only versions kiln built can be exported — export it with the tool that made it", v.Name, what)
	}
	art, err := v.Artifact(f)
	if err != nil {
		if ErrorCode(err) == ENOTFOUND {
			have := make([]string, 0, 3)
			for _, f := range v.ArtifactFormats() {
				have = append(have, string(f))
			}
			return nil, Errorf(ENOTFOUND, "%s (it has %s)", ErrorMessage(err), strings.Join(have, ", "))
		}
		return nil, err
	}
	return art, nil
}

// ArtifactFormats lists the formats the version has artifacts of: rootfs
// first when it has a root filesystem, then its disk images.
func (v *Version) ArtifactFormats() []ArtifactFormat {
	var out []ArtifactFormat
	if v.Provenance.Artifact != nil && !v.Provenance.Artifact.External() {
		out = append(out, FormatRootfs)
	}
	for _, a := range v.Provenance.Artifacts {
		out = append(out, a.Format)
	}
	return out
}

// VersionFilter selects versions. Zero fields do not filter.
type VersionFilter struct {
	Image string
	// Status keeps versions with any of these statuses.
	Status []Status
	// MinStatus keeps versions whose status ranks at least this high
	// (candidate < tested < ready; failed/deprecated/revoked never match).
	MinStatus Status
	// Tags keeps versions having every one of these tags.
	Tags   Tags
	Limit  int
	Offset int
}

// HistoryEntry records one change of a version's status or tags.
type HistoryEntry struct {
	ID      int64      `json:"id"`
	Version VersionRef `json:"version"`
	Time    time.Time  `json:"time"`
	Actor   string     `json:"actor"`
	// Field is "status", "tag:<key>", "revocation", "reproduction" (a
	// rebuild check: To is identical or different) or "packages" (an
	// external version given its package manifest: To is the count).
	Field  string `json:"field"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason,omitempty"`
}

// Lineage is one "built on" edge: Child's version Version was built on Base.
type Lineage struct {
	Child Version    `json:"child"`
	Base  VersionRef `json:"base"`
	// LatestBaseReady is the newest ready version of Base.Image, when any.
	LatestBaseReady *VersionRef `json:"latest_base_ready,omitempty"`
	// OutOfDate is true when a newer ready base version exists than the one
	// the child's latest version was built on.
	OutOfDate bool `json:"out_of_date"`
}

// VersionImporter records several versions in one transaction, all or
// none: the builds of a Packer manifest. Registries that can (the SQL
// store) implement it; callers fall back to validating everything first
// and creating one by one.
type VersionImporter interface {
	CreateVersions(ctx context.Context, nvs []*NewVersion) ([]*Version, error)
}

// MaxPackages bounds one version's package manifest.
const MaxPackages = 20000

// ValidatePackages checks a package manifest: every package has a name
// and a version, and no name is listed twice for one architecture.
// Errors name field[i].
func ValidatePackages(field string, pkgs []Package) error {
	if len(pkgs) > MaxPackages {
		return FieldErrorf(EINVALID, field, "%d packages given; the limit is %d", len(pkgs), MaxPackages)
	}
	seen := make(map[[2]string]int, len(pkgs))
	for i, pk := range pkgs {
		f := fmt.Sprintf("%s[%d]", field, i)
		if pk.Name == "" || pk.Version == "" {
			return FieldErrorf(EINVALID, f, "package needs a name and a version")
		}
		k := [2]string{pk.Name, pk.Architecture}
		if j, dup := seen[k]; dup {
			return FieldErrorf(EINVALID, f, "package %s (%s) is listed twice, also at %s[%d]; a manifest lists each installed package once", pk.Name, pk.Architecture, field, j)
		}
		seen[k] = i
	}
	return nil
}

// PackageRecorder gives a version of method external, which kiln did not
// build and so could not read, its package manifest once, so that
// exposure and scans see it. A version kiln built, or an external one
// that has a manifest, is immutable: EIMMUTABLE. The change is audited
// and kept in the version's history (field "packages"). An external
// version is not signed: the manifest is the recorder's word, as the rest
// of its record is.
type PackageRecorder interface {
	SetPackages(ctx context.Context, ref VersionRef, pkgs []Package) (*Version, error)
}

package definition

import (
	"fmt"
	"maps"
	"math"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/kiln-project/kiln"
)

var imageSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "description"},
		{Name: "version"},
		{Name: "method"},
		{Name: "base"},
		{Name: "base_version"},
		{Name: "packages"},
		{Name: "purge"},
		{Name: "tags"},
		{Name: "tests"},
		{Name: "test_vars"},
		{Name: "volatile"},
		{Name: "formats"},
	},
	Blocks: []hcl.BlockHeaderSchema{
		{Type: "debian"},
		{Type: "origin"},
		{Type: "file"},
		{Type: "shell"},
		{Type: "apt_source", LabelNames: []string{"name"}}, // aptsource.go
	},
}

var debianSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "suite", Required: true},
		{Name: "mirror"},
		{Name: "variant"},
		{Name: "components"},
	},
}

var originSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "source", Required: true},
		{Name: "sha256", Required: true},
	},
}

var fileSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "source", Required: true},
		{Name: "destination", Required: true},
		{Name: "mode"},
		{Name: "owner"},
	},
}

var shellSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "inline"},
		{Name: "scripts"},
		{Name: "env"},
	},
}

// Defaults applied when a definition leaves them out.
const (
	DefaultMirror  = "http://deb.debian.org/debian"
	DefaultVariant = "minbase"
	DefaultMode    = 0o644
	DefaultOwner   = "root:root"
)

// DefaultComponents are the archive components used when none are given.
var DefaultComponents = []string{"main"}

// mmdebstrapVariants are the --variant values mmdebstrap accepts.
var mmdebstrapVariants = []string{"extract", "custom", "essential", "apt", "required", "minbase", "buildd", "important", "debootstrap", "standard"}

var (
	// A Debian package name (policy 5.6.1), optionally with :arch and =version.
	packageRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$`)
	suiteRE     = regexp.MustCompile(`^[a-z][a-z0-9.-]*$`)
	componentRE = regexp.MustCompile(`^[a-z][a-z0-9/-]*$`)
	modeRE      = regexp.MustCompile(`^0?[0-7]{3,4}$`)
	ownerPartRE = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}\$?|[0-9]{1,10})$`)
	envKeyRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256RE    = regexp.MustCompile(`^(sha256:)?[0-9a-f]{64}$`)
)

// imageDecl is an image being decoded, with what the loader needs later
// for ordering and messages.
type imageDecl struct {
	img       *Image
	src       []byte    // the block's source text
	baseRange hcl.Range // the base attribute, for messages about the base
	// formats is the formats attribute (nil when absent), for messages
	// about disk images.
	formats *hcl.Attribute
	// purgeRange is the purge attribute's value, for messages about a
	// purged kernel.
	purgeRange hcl.Range
}

// decodeImage reads one image block. It returns nil only when the block
// cannot be an image at all; otherwise it returns what it could read with
// diagnostics for the rest.
func (l *loader) decodeImage(block *hcl.Block, src []byte) (*imageDecl, hcl.Diagnostics) {
	name := block.Labels[0]
	var diags hcl.Diagnostics
	if err := kiln.ValidateImageName(name); err != nil {
		diags = append(diags, rangeError(block.LabelRanges[0], "Invalid image name", kilnMessage(err)))
	}
	rng := blockRange(block)
	img := &Image{Name: name, File: rng.Filename, Range: rng, Method: string(kiln.MethodFresh)}
	d := &imageDecl{img: img, src: rng.SliceBytes(src)}

	content, cd := block.Body.Content(imageSchema)
	diags = append(diags, cd...)
	ctx := l.ctx
	attrs := content.Attributes

	if a, ok := attrs["description"]; ok {
		img.Description, cd = attrString(a, ctx, `"general-purpose Debian server"`)
		diags = append(diags, cd...)
	}
	if a, ok := attrs["version"]; ok {
		v, cd := attrString(a, ctx, `"1.0.4"`)
		diags = append(diags, cd...)
		if !cd.HasErrors() && v != "" {
			if err := kiln.ValidateSemVer("version", v); err != nil {
				diags = append(diags, attrError(a, "Invalid version", kilnMessage(err)))
			} else {
				img.Version = v
			}
		}
	}
	var methodAttr *hcl.Attribute
	if a, ok := attrs["method"]; ok {
		methodAttr = a
		v, cd := attrString(a, ctx, `"fresh"`)
		diags = append(diags, cd...)
		if !cd.HasErrors() && v != "" {
			if m, err := kiln.ParseMethod("method", v); err != nil || m == kiln.MethodExternal {
				// external is for versions kiln records but does not
				// build (Packer imports); a definition is built by kiln.
				diags = append(diags, attrError(a, "Invalid build method", fmt.Sprintf("unknown build method %q; use fresh or reheat", v)))
			} else {
				img.Method = string(m)
			}
		}
	}
	if a, ok := attrs["packages"]; ok {
		img.Packages, cd = l.packageList(a)
		diags = append(diags, cd...)
	}
	if a, ok := attrs["purge"]; ok {
		img.Purge, cd = l.packageList(a)
		diags = append(diags, cd...)
		for _, p := range img.Purge {
			if slices.Contains(img.Packages, p) {
				diags = append(diags, attrError(a, "Package both installed and purged",
					fmt.Sprintf("%q is in both packages and purge of image %q; keep it in one list.", p, name)))
			}
		}
	}
	if a, ok := attrs["tags"]; ok {
		tags, cd := attrStringMap(a, ctx, `{ team = "platform" }`)
		diags = append(diags, cd...)
		if len(tags) > kiln.MaxTags {
			diags = append(diags, attrError(a, "Too many tags", fmt.Sprintf("image %q has %d tags; the limit is %d.", name, len(tags), kiln.MaxTags)))
		}
		for _, k := range slices.Sorted(maps.Keys(tags)) {
			if err := kiln.ValidateTag("tags", k, tags[k]); err != nil {
				diags = append(diags, attrError(a, "Invalid tag", kilnMessage(err)))
			}
		}
		img.Tags = tags
	}
	if a, ok := attrs["tests"]; ok {
		tests, cd := attrStrings(a, ctx, `["tests/`+name+`.yaml"]`)
		diags = append(diags, cd...)
		for _, t := range tests {
			p, diag := l.resolvePath(t, a.Expr.Range(), "test file")
			if diag != nil {
				diags = append(diags, diag)
				continue
			}
			img.Tests = append(img.Tests, t)
			img.TestPaths = append(img.TestPaths, p)
		}
	}
	if a, ok := attrs["test_vars"]; ok {
		files, cd := attrStrings(a, ctx, `["tests/vars.yaml"]`)
		diags = append(diags, cd...)
		if attrs["tests"] == nil {
			diags = append(diags, attrError(a, "test_vars without tests",
				fmt.Sprintf("test_vars gives values to the Go templates of image %q's test files, but it has none; add tests = [\"tests/%s.yaml\"] or remove test_vars.", name, name)))
		}
		for _, f := range files {
			p, diag := l.resolvePath(f, a.Expr.Range(), "test vars file")
			if diag == nil {
				diag = checkVarsFile(p, f, a.Expr.Range())
			}
			if diag != nil {
				diags = append(diags, diag)
				continue
			}
			img.TestVars = append(img.TestVars, f)
			img.TestVarsPaths = append(img.TestVarsPaths, p)
		}
	}

	if a, ok := attrs["volatile"]; ok {
		img.Volatile, cd = l.volatileList(a)
		diags = append(diags, cd...)
	}
	img.Formats = []kiln.ArtifactFormat{kiln.FormatRootfs}
	if a, ok := attrs["formats"]; ok {
		d.formats = a
		img.Formats, cd = l.formatList(a)
		diags = append(diags, cd...)
	}
	if a, ok := attrs["purge"]; ok {
		d.purgeRange = a.Expr.Range()
	}

	// Origins: exactly one of debian, base, origin.
	var origins []string
	var originRanges []hcl.Range
	if a, ok := attrs["base"]; ok {
		origins = append(origins, "base")
		originRanges = append(originRanges, a.Range)
		d.baseRange = a.Expr.Range()
		img.Base, cd = decodeBase(a)
		diags = append(diags, cd...)
	}
	if a, ok := attrs["base_version"]; ok {
		n, cd := attrInt(a, ctx, "3", 1, math.MaxInt32)
		diags = append(diags, cd...)
		switch {
		case img.Base != nil && !cd.HasErrors():
			img.Base.Number = int(n)
		case img.Base == nil && attrs["base"] == nil:
			diags = append(diags, attrError(a, "base_version without base",
				"base_version pins a version of the base image; set base = image.NAME too, or remove base_version."))
		}
		if img.Method == string(kiln.MethodReheat) {
			diags = append(diags, attrError(a, "base_version with reheat",
				fmt.Sprintf("image %q is reheated: it builds on its own previous version, not on a base version, so the pin would be ignored; remove base_version or use method = \"fresh\".", name)))
		}
	}
	for _, b := range content.Blocks {
		switch b.Type {
		case "debian":
			origins = append(origins, "debian block")
			originRanges = append(originRanges, b.DefRange)
			if img.Debian == nil {
				img.Debian, cd = l.decodeDebian(b)
				diags = append(diags, cd...)
			}
		case "origin":
			origins = append(origins, "origin block")
			originRanges = append(originRanges, b.DefRange)
			if img.Artifact == nil {
				img.Artifact, cd = l.decodeOrigin(b)
				diags = append(diags, cd...)
				if img.Method == string(kiln.MethodReheat) {
					diags = append(diags, rangeError(b.DefRange, "origin with reheat",
						fmt.Sprintf("image %q is reheated: it builds on its own previous version, so a new origin artifact would never be used; use method = \"fresh\" to import the artifact again.", name)))
				}
			}
		case "file":
			st, cd := l.decodeFile(b)
			diags = append(diags, cd...)
			if st != nil {
				img.Steps = append(img.Steps, *st)
			}
		case "shell":
			st, cd := l.decodeShell(b)
			diags = append(diags, cd...)
			if st != nil {
				img.Steps = append(img.Steps, *st)
			}
		case "apt_source":
			s, cd := l.decodeAptSource(b, img)
			diags = append(diags, cd...)
			img.AptSources = append(img.AptSources, s)
		}
	}
	diags = append(diags, checkAptSources(img)...)
	switch {
	case len(origins) == 0 && !l.broken[img.File]:
		diags = append(diags, rangeError(block.DefRange, "Image has no origin",
			fmt.Sprintf("image %q must start from something: add a debian { suite = \"bookworm\" } block, base = image.NAME, or an origin { source = … sha256 = … } block.", name)))
	case len(origins) > 1:
		diags = append(diags, rangeError(originRanges[1], "Image has more than one origin",
			fmt.Sprintf("image %q has %s; an image starts from exactly one of a debian block, base = image.NAME or an origin block: keep one.", name, strings.Join(origins, " and "))))
	}
	if methodAttr != nil && img.Method == string(kiln.MethodReheat) && len(img.Packages) == 0 && len(img.Purge) == 0 && len(img.Steps) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Reheat with nothing to apply",
			Detail:  fmt.Sprintf("image %q is reheated but lists no packages, purges or steps; each version will only carry the previous one's package updates.", name),
			Subject: methodAttr.Range.Ptr()})
	}
	return d, diags
}

func decodeBase(a *hcl.Attribute) (*BaseRef, hcl.Diagnostics) {
	const how = "write base = image.NAME, naming another image of this estate, e.g. base = image.basic-linux."
	tr, diags := hcl.AbsTraversalForExpr(a.Expr)
	if diags.HasErrors() {
		return nil, hcl.Diagnostics{attrError(a, "Invalid base", "base must be a reference to an image, not a value; "+how)}
	}
	if tr.RootName() != "image" || len(tr) != 2 {
		return nil, hcl.Diagnostics{attrError(a, "Invalid base", how)}
	}
	step, ok := tr[1].(hcl.TraverseAttr)
	if !ok {
		return nil, hcl.Diagnostics{attrError(a, "Invalid base", how)}
	}
	return &BaseRef{Image: step.Name}, nil
}

// formatList reads the formats attribute: the artifacts each build makes.
// rootfs is always made and comes first; the rest keep kiln's order
// (kiln.ArtifactFormats). A bad element is reported at the element when
// the list is written out, else at the attribute.
func (l *loader) formatList(a *hcl.Attribute) ([]kiln.ArtifactFormat, hcl.Diagnostics) {
	names, diags := attrStrings(a, l.ctx, `["rootfs", "qcow2"]`)
	var elems []hclsyntax.Expression
	if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && len(t.Exprs) == len(names) {
		elems = t.Exprs
	}
	at := func(i int) *hcl.Range {
		if elems != nil {
			return elems[i].Range().Ptr()
		}
		return a.Expr.Range().Ptr()
	}
	seen := map[kiln.ArtifactFormat]bool{kiln.FormatRootfs: true}
	for i, n := range names {
		f, err := kiln.ParseArtifactFormat("formats", n)
		if err != nil {
			summary := "Unknown artifact format"
			if n == "oci" {
				summary = "oci is not a build format"
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: kilnMessage(err), Subject: at(i), Context: a.Range.Ptr()})
			continue
		}
		if seen[f] && f != kiln.FormatRootfs {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Duplicate format",
				Detail: fmt.Sprintf("%q is listed twice in formats; remove one.", n), Subject: at(i)})
		}
		seen[f] = true
	}
	var out []kiln.ArtifactFormat
	for _, f := range kiln.ArtifactFormats {
		if seen[f] {
			out = append(out, f)
		}
	}
	return out, diags
}

func (l *loader) packageList(a *hcl.Attribute) ([]string, hcl.Diagnostics) {
	pkgs, diags := attrStrings(a, l.ctx, `["curl", "ca-certificates"]`)
	seen := map[string]bool{}
	out := pkgs[:0]
	for _, p := range pkgs {
		if !packageRE.MatchString(p) {
			diags = append(diags, attrError(a, "Invalid package name",
				fmt.Sprintf("%q is not a Debian package name; use lowercase letters, digits and + . -, optionally NAME=VERSION, e.g. nginx-light.", p)))
			continue
		}
		if seen[p] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Duplicate package",
				Detail: fmt.Sprintf("%q is listed twice in %s; remove one.", p, a.Name), Subject: a.Expr.Range().Ptr()})
			continue
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, diags
}

// volatileList reads the volatile attribute: patterns of paths services
// write at run time, which drift detection ignores (volatile.go). A bad
// pattern is reported at its element of the list when the list is written
// out, else at the attribute.
func (l *loader) volatileList(a *hcl.Attribute) ([]string, hcl.Diagnostics) {
	pats, diags := attrStrings(a, l.ctx, `["/var/lib/nginx"]`)
	var elems []hclsyntax.Expression
	if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && len(t.Exprs) == len(pats) {
		elems = t.Exprs
	}
	var out []string
	for i, p := range pats {
		rng := a.Expr.Range()
		if elems != nil {
			rng = elems[i].Range()
		}
		if err := ValidateVolatile(p); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid volatile pattern",
				Detail: err.Error() + ".", Subject: rng.Ptr(), Context: a.Range.Ptr()})
			continue
		}
		if slices.Contains(out, p) {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Duplicate volatile pattern",
				Detail: fmt.Sprintf("%q is listed twice in volatile; remove one.", p), Subject: rng.Ptr()})
			continue
		}
		out = append(out, p)
	}
	if len(out) > maxVolatile {
		diags = append(diags, attrError(a, "Too many volatile patterns",
			fmt.Sprintf("volatile lists %d patterns; the limit is %d: ignore whole directories (\"/var/lib/nginx\") rather than each file in them.", len(out), maxVolatile)))
	}
	return out, diags
}

func (l *loader) decodeDebian(b *hcl.Block) (*Debian, hcl.Diagnostics) {
	content, diags := b.Body.Content(debianSchema)
	deb := &Debian{Mirror: DefaultMirror, Variant: DefaultVariant, Components: append([]string(nil), DefaultComponents...)}
	if a, ok := content.Attributes["suite"]; ok {
		s, d := attrString(a, l.ctx, `"bookworm"`)
		diags = append(diags, d...)
		if !d.HasErrors() && !suiteRE.MatchString(s) {
			diags = append(diags, attrError(a, "Invalid suite", fmt.Sprintf("%q is not a Debian suite name; use a codename such as bookworm or a suite such as stable.", s)))
		}
		deb.Suite = s
	}
	if a, ok := content.Attributes["mirror"]; ok {
		s, d := attrString(a, l.ctx, `"http://deb.debian.org/debian"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				diags = append(diags, attrError(a, "Invalid mirror", fmt.Sprintf("%q is not an http or https URL; write the archive's URL, e.g. http://deb.debian.org/debian.", s)))
			}
			deb.Mirror = s
		}
	}
	if a, ok := content.Attributes["variant"]; ok {
		s, d := attrString(a, l.ctx, `"minbase"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if !slices.Contains(mmdebstrapVariants, s) {
				diags = append(diags, attrError(a, "Invalid variant", fmt.Sprintf("%q is not an mmdebstrap variant; use one of %s.", s, strings.Join(mmdebstrapVariants, ", "))))
			}
			deb.Variant = s
		}
	}
	if a, ok := content.Attributes["components"]; ok {
		cs, d := attrStrings(a, l.ctx, `["main"]`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if len(cs) == 0 {
				diags = append(diags, attrError(a, "No components", `components must name at least one archive component, e.g. ["main"]; remove the attribute to use main.`))
			}
			for _, c := range cs {
				if !componentRE.MatchString(c) {
					diags = append(diags, attrError(a, "Invalid component", fmt.Sprintf("%q is not an archive component name, such as main, contrib or non-free-firmware.", c)))
				}
			}
			deb.Components = cs
		}
	}
	return deb, diags
}

func (l *loader) decodeOrigin(b *hcl.Block) (*OriginArtifact, hcl.Diagnostics) {
	content, diags := b.Body.Content(originSchema)
	o := &OriginArtifact{}
	if a, ok := content.Attributes["sha256"]; ok {
		s, d := attrString(a, l.ctx, `"sha256:…64 hex digits…"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if !sha256RE.MatchString(s) {
				diags = append(diags, attrError(a, "Invalid sha256", "sha256 must be the artifact's SHA-256 as 64 lowercase hex digits, optionally after sha256: (run sha256sum on the file)."))
			} else {
				o.Digest = "sha256:" + strings.TrimPrefix(s, "sha256:")
			}
		}
	}
	if a, ok := content.Attributes["source"]; ok {
		s, d := attrString(a, l.ctx, `"rootfs.tar.zst"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			o.Source = s
			if strings.Contains(s, "://") {
				u, err := url.Parse(s)
				if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					diags = append(diags, attrError(a, "Invalid origin source", fmt.Sprintf("%q is neither a path in the estate nor an http(s) URL.", s)))
				}
			} else {
				p, diag := l.resolvePath(s, a.Expr.Range(), "origin artifact")
				if diag != nil {
					diags = append(diags, diag)
				}
				o.Path = p
			}
		}
	}
	return o, diags
}

func (l *loader) decodeFile(b *hcl.Block) (*Step, hcl.Diagnostics) {
	content, diags := b.Body.Content(fileSchema)
	st := &Step{Kind: StepFile, Range: blockRange(b), Mode: DefaultMode, Owner: DefaultOwner}
	if a, ok := content.Attributes["source"]; ok {
		s, d := attrString(a, l.ctx, `"files/motd"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			st.Source = s
			p, diag := l.resolvePath(s, a.Expr.Range(), "file source")
			if diag != nil {
				diags = append(diags, diag)
			}
			st.Path = p
		}
	}
	if a, ok := content.Attributes["destination"]; ok {
		s, d := attrString(a, l.ctx, `"/etc/motd"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if !path.IsAbs(s) || path.Clean(s) != s || s == "/" || strings.ContainsRune(s, 0) {
				diags = append(diags, attrError(a, "Invalid destination",
					fmt.Sprintf("destination %q must be a clean absolute path of a file inside the image, e.g. /etc/motd (no trailing slash, no . or ..).", s)))
			} else if s == VolatileFile {
				diags = append(diags, attrError(a, "Reserved destination",
					fmt.Sprintf("kiln writes %s itself from the image's volatile attribute when it finishes a build, replacing any file there; set volatile = [\"/path\", …] instead.", s)))
			}
			st.Destination = s
		}
	}
	if a, ok := content.Attributes["mode"]; ok {
		s, d := attrString(a, l.ctx, `"0644"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if !modeRE.MatchString(s) {
				diags = append(diags, attrError(a, "Invalid mode", fmt.Sprintf("mode %q is not an octal file mode; write it as a string of octal digits, e.g. \"0644\" or \"0755\".", s)))
			} else {
				m, _ := strconv.ParseUint(s, 8, 32)
				st.Mode = uint32(m)
			}
		}
	}
	if a, ok := content.Attributes["owner"]; ok {
		s, d := attrString(a, l.ctx, `"root:root"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			user, group, hasGroup := strings.Cut(s, ":")
			if !ownerPartRE.MatchString(user) || (hasGroup && !ownerPartRE.MatchString(group)) {
				diags = append(diags, attrError(a, "Invalid owner", fmt.Sprintf("owner %q is not USER or USER:GROUP with user and group names (lowercase, e.g. www-data) or numeric ids, e.g. \"root:root\" or \"33:33\".", s)))
			} else {
				st.Owner = s
			}
		}
	}
	return st, diags
}

func (l *loader) decodeShell(b *hcl.Block) (*Step, hcl.Diagnostics) {
	content, diags := b.Body.Content(shellSchema)
	st := &Step{Kind: StepShell, Range: blockRange(b)}
	inline, scripts := content.Attributes["inline"], content.Attributes["scripts"]
	switch {
	case inline == nil && scripts == nil:
		diags = append(diags, rangeError(b.DefRange, "Shell step has nothing to run", `set inline = ["command", …] or scripts = ["scripts/setup.sh"].`))
	case inline != nil && scripts != nil:
		diags = append(diags, rangeError(scripts.Range, "Shell step has both inline and scripts", "a shell step runs either inline commands or script files; split it into two shell blocks."))
	}
	if inline != nil {
		cmds, d := attrStrings(inline, l.ctx, `["systemctl enable nginx"]`)
		diags = append(diags, d...)
		if !d.HasErrors() && len(cmds) == 0 {
			diags = append(diags, attrError(inline, "Empty inline", "inline lists no commands; add one or remove the shell block."))
		}
		st.Inline = cmds
	}
	if scripts != nil {
		names, d := attrStrings(scripts, l.ctx, `["scripts/setup.sh"]`)
		diags = append(diags, d...)
		if !d.HasErrors() && len(names) == 0 {
			diags = append(diags, attrError(scripts, "Empty scripts", "scripts lists no files; add one or remove the shell block."))
		}
		for _, s := range names {
			p, diag := l.resolvePath(s, scripts.Expr.Range(), "script")
			if diag != nil {
				diags = append(diags, diag)
			}
			st.Scripts = append(st.Scripts, s)
			st.ScriptPaths = append(st.ScriptPaths, p)
		}
	}
	if a, ok := content.Attributes["env"]; ok {
		env, d := attrStringMap(a, l.ctx, `{ DEBIAN_FRONTEND = "noninteractive" }`)
		diags = append(diags, d...)
		for _, k := range slices.Sorted(maps.Keys(env)) {
			if !envKeyRE.MatchString(k) {
				diags = append(diags, attrError(a, "Invalid environment variable name",
					fmt.Sprintf("%q is not a valid environment variable name; use letters, digits and underscores, not starting with a digit.", k)))
			}
		}
		st.Env = env
	}
	return st, diags
}

// blockRange is the whole block, from its type keyword to its closing brace.
func blockRange(b *hcl.Block) hcl.Range {
	if body, ok := b.Body.(*hclsyntax.Body); ok {
		return hcl.RangeBetween(b.DefRange, body.SrcRange)
	}
	return b.DefRange
}

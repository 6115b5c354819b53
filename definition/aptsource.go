package definition

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// AptSource is an `apt_source "NAME"` block of an image: one more Debian
// repository the image's apt step installs from (a vendor's, an internal
// one), beside the mirror its base was bootstrapped from.
//
//	apt_source "demo" {
//	  url        = "http://repo.example/debian"
//	  suite      = "bookworm"
//	  components = ["main"]
//	  signed_by  = "keys/demo.gpg"   # a key file of the estate, or
//	  # trusted  = true              # an unsigned repository (recorded as such)
//	}
//
// The repository's Release file is an input of the build: a new
// publication makes the image not up to date, and its digest is recorded
// in the provenance.
type AptSource struct {
	Name       string
	URL        string
	Suite      string
	Components []string
	// SignedBy is the key file relative to the estate dir, SignedByPath
	// the same file resolved; empty when Trusted.
	SignedBy     string
	SignedByPath string
	// Trusted accepts the repository without a signature ([trusted=yes]).
	Trusted bool
	Range   hcl.Range
}

// KeyringPath is where the key goes in the image.
func (s *AptSource) KeyringPath() string {
	if s.SignedBy == "" {
		return ""
	}
	return "/etc/apt/keyrings/kiln-" + s.Name + filepath.Ext(s.SignedBy)
}

// ListPath is the sources.list.d file the image gets.
func (s *AptSource) ListPath() string { return "/etc/apt/sources.list.d/kiln-" + s.Name + ".list" }

// Line is the one-line apt source written into the image.
func (s *AptSource) Line() string {
	opt := "[trusted=yes]"
	if !s.Trusted {
		opt = "[signed-by=" + s.KeyringPath() + "]"
	}
	return fmt.Sprintf("deb %s %s %s %s", opt, s.URL, s.Suite, strings.Join(s.Components, " "))
}

var aptSourceNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

var aptSourceSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "url", Required: true},
		{Name: "suite", Required: true},
		{Name: "components"},
		{Name: "signed_by"},
		{Name: "trusted"},
	},
}

// decodeAptSource reads one apt_source block of img.
func (l *loader) decodeAptSource(b *hcl.Block, img *Image) (*AptSource, hcl.Diagnostics) {
	name := b.Labels[0]
	s := &AptSource{Name: name, Components: []string{"main"}, Range: blockRange(b)}
	var diags hcl.Diagnostics
	if !aptSourceNameRE.MatchString(name) {
		diags = append(diags, rangeError(b.LabelRanges[0], "Invalid apt source name",
			fmt.Sprintf("%q is not a usable name; use lowercase letters, digits and dashes, e.g. apt_source \"vendor\".", name)))
	}
	for _, prev := range img.AptSources {
		if prev.Name == name {
			diags = append(diags, rangeError(b.LabelRanges[0], "Duplicate apt source",
				fmt.Sprintf("image %q already has apt_source %q at %s; rename or remove one.", img.Name, name, pos(prev.Range))))
		}
	}
	content, d := b.Body.Content(aptSourceSchema)
	diags = append(diags, d...)
	attrs := content.Attributes
	if a, ok := attrs["url"]; ok {
		v, d := attrString(a, l.ctx, `"http://repo.example/debian"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(v, " \t\n[]") {
				diags = append(diags, attrError(a, "Invalid apt source URL", fmt.Sprintf("%q is not an http(s) URL of a Debian repository; write e.g. url = \"https://repo.example/debian\".", v)))
			}
			s.URL = strings.TrimRight(v, "/")
		}
	}
	if a, ok := attrs["suite"]; ok {
		v, d := attrString(a, l.ctx, `"bookworm"`)
		diags = append(diags, d...)
		if !d.HasErrors() && !suiteRE.MatchString(v) {
			diags = append(diags, attrError(a, "Invalid suite", fmt.Sprintf("%q is not a suite name; use the repository's codename or suite, e.g. bookworm.", v)))
		}
		s.Suite = v
	}
	if a, ok := attrs["components"]; ok {
		v, d := attrStrings(a, l.ctx, `["main"]`)
		diags = append(diags, d...)
		for _, c := range v {
			if !componentRE.MatchString(c) {
				diags = append(diags, attrError(a, "Invalid component", fmt.Sprintf("%q is not a component name, e.g. main.", c)))
			}
		}
		if len(v) == 0 && !d.HasErrors() {
			diags = append(diags, attrError(a, "No components", "list at least one component, e.g. components = [\"main\"]."))
		}
		s.Components = v
	}
	if a, ok := attrs["trusted"]; ok {
		v, d := evalAttr(a, l.ctx, cty.Bool, "true")
		diags = append(diags, d...)
		if v != cty.NilVal {
			s.Trusted = v.True()
		}
	}
	if a, ok := attrs["signed_by"]; ok {
		v, d := attrString(a, l.ctx, `"keys/vendor.gpg"`)
		diags = append(diags, d...)
		if !d.HasErrors() {
			if ext := filepath.Ext(v); ext != ".gpg" && ext != ".asc" {
				diags = append(diags, attrError(a, "Invalid key file", fmt.Sprintf("signed_by %q must name a .gpg (binary) or .asc (armored) OpenPGP key file, as apt's signed-by option reads them.", v)))
			} else if p, diag := l.resolvePath(v, a.Expr.Range(), "apt source key"); diag != nil {
				diags = append(diags, diag)
			} else {
				s.SignedBy, s.SignedByPath = v, p
			}
		}
	}
	_, hasKey := attrs["signed_by"]
	switch {
	case hasKey && s.Trusted:
		diags = append(diags, rangeError(b.DefRange, "Both signed_by and trusted",
			fmt.Sprintf("apt_source %q gives a key and trusted = true; keep signed_by (apt checks the Release signature) or, for an unsigned repository, trusted = true alone.", name)))
	case !hasKey && !s.Trusted:
		diags = append(diags, rangeError(b.DefRange, "Apt source without a key",
			fmt.Sprintf("apt_source %q says neither signed_by = \"keys/FILE.gpg\" (the repository's key, a file of the estate) nor trusted = true (an unsigned repository, recorded as such in the provenance); apt refuses an unsigned source otherwise.", name)))
	}
	return s, diags
}

// checkAptSources refuses apt sources on images whose packages are not
// installed by an apt step: an image from a debian block (fresh, and the
// first version of a reheated one) installs them with mmdebstrap from the
// mirror alone, and an origin artifact's image is not known to run apt.
func checkAptSources(img *Image) hcl.Diagnostics {
	if len(img.AptSources) == 0 || img.Base != nil {
		return nil
	}
	return hcl.Diagnostics{rangeError(img.AptSources[0].Range, "apt_source without a base",
		fmt.Sprintf("image %q is not built on a base image: its packages are installed by mmdebstrap from its debian block's mirror (or come with its origin artifact) before any apt source exists; install from apt sources in an image built on it (base = image.%s).", img.Name, img.Name))}
}

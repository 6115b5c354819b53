package oci

import (
	"net"
	"net/netip"
	"strings"

	"oras.land/oras-go/v2/registry"

	"github.com/kiln-project/kiln"
)

// Scheme starts every URL this package accepts.
const Scheme = "oci://"

// Location is a parsed oci://HOST[:PORT]/REPOSITORY.
type Location struct {
	// Host is HOST[:PORT], as the registry's credentials are keyed.
	Host string
	// Repository is the repository path holding kiln's blobs; a version of
	// image IMAGE goes to Repository/IMAGE.
	Repository string
}

// String returns the location as a URL.
func (l Location) String() string { return Scheme + l.Host + "/" + l.Repository }

// ParseURL parses oci://HOST[:PORT]/REPOSITORY. field names the input for
// errors (a flag or environment variable).
func ParseURL(field, s string) (Location, error) {
	bad := func(why string) (Location, error) {
		return Location{}, kiln.FieldErrorf(kiln.EINVALID, field, "%q is not an OCI registry URL: %s; write oci://HOST[:PORT]/REPOSITORY, e.g. oci://registry.example.com/kiln or oci://127.0.0.1:5000/kiln", s, why)
	}
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return bad("it does not start with oci://")
	}
	host, repo, _ := strings.Cut(rest, "/")
	repo = strings.TrimSuffix(repo, "/")
	if host == "" {
		return bad("the host is missing")
	}
	if repo == "" {
		return bad("the repository is missing")
	}
	if strings.ContainsAny(repo, ":@") {
		return bad("the repository " + repo + " has a tag or digest; name the repository only")
	}
	ref := registry.Reference{Registry: host, Repository: repo}
	if err := ref.ValidateRegistry(); err != nil {
		return bad("host " + host + " is not HOST or HOST:PORT")
	}
	if err := ref.ValidateRepository(); err != nil {
		return bad("repository " + repo + " is not a valid repository name (lowercase letters, digits, and . _ - / between them)")
	}
	return Location{Host: host, Repository: repo}, nil
}

// Loopback reports whether the location's host is a loopback address or
// "localhost": the only hosts plain HTTP is used with unless asked for.
func (l Location) Loopback() bool {
	h := l.Host
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Unmap().IsLoopback()
}

// image returns the repository holding an image's versions.
func (l Location) image(name string) string { return l.Repository + "/" + name }

// ImageRef is a parsed oci://HOST[:PORT]/REPOSITORY/IMAGE:TAG (or
// …/IMAGE@sha256:…): one version of an image in a kiln store's layout,
// named without kiln's database.
type ImageRef struct {
	// Location is the store the image belongs to: REPOSITORY holds the
	// artifacts, REPOSITORY/IMAGE the image's versions.
	Location Location
	// Image is the image line, e.g. appserver.
	Image string
	// Reference is the tag (the version number or its semver tag) or the
	// manifest digest.
	Reference string
}

// String returns the reference as a URL.
func (r ImageRef) String() string {
	sep := ":"
	if _, ok := isDigest(r.Reference); ok {
		sep = "@"
	}
	return r.Location.String() + "/" + r.Image + sep + r.Reference
}

// ParseImageRef parses oci://HOST[:PORT]/REPOSITORY/IMAGE:TAG or
// oci://HOST[:PORT]/REPOSITORY/IMAGE@sha256:…, where oci://HOST/REPOSITORY
// is the store kiln pushed to (--artifacts) and TAG the version number or
// its semver tag. field names the input for errors.
func ParseImageRef(field, s string) (ImageRef, error) {
	bad := func(why string) (ImageRef, error) {
		return ImageRef{}, kiln.FieldErrorf(kiln.EINVALID, field, "%q is not a version's image in a registry: %s; write oci://HOST[:PORT]/REPOSITORY/IMAGE:N, e.g. oci://registry.example.com/kiln/appserver:3 (REPOSITORY is the --artifacts repository kiln pushed to)", s, why)
	}
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return bad("it does not start with oci://")
	}
	var name, reference string
	if n, d, ok := strings.Cut(rest, "@"); ok {
		if _, isD := isDigest(d); !isD {
			return bad("the digest " + d + " is not sha256:<64 hex digits>")
		}
		name, reference = n, d
	} else {
		i := strings.LastIndex(rest, "/")
		j := strings.LastIndex(rest, ":")
		if i < 0 || j < i {
			return bad("the version is missing (:N after the image)")
		}
		name, reference = rest[:j], rest[j+1:]
		if !tagRE.MatchString(reference) {
			return bad("the tag " + reference + " is not a version number or a semver tag")
		}
	}
	i := strings.LastIndex(name, "/")
	if i < 0 {
		return bad("the image is missing")
	}
	loc, err := ParseURL(field, Scheme+name[:i])
	if err != nil {
		return bad("the registry and repository before the image (" + Scheme + name[:i] + ") are not oci://HOST[:PORT]/REPOSITORY")
	}
	image := name[i+1:]
	if err := kiln.ValidateImageName(image); err != nil {
		return bad(kiln.ErrorMessage(err))
	}
	return ImageRef{Location: loc, Image: image, Reference: reference}, nil
}

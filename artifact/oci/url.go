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

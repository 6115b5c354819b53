package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/kiln-project/kiln"
)

// Options say how to reach a registry. The zero value reads credentials
// from ~/.docker/config.json, trusts the system's CAs, and uses plain HTTP
// only with a loopback registry that does not speak TLS.
type Options struct {
	// CredentialsFile is a credentials file in Docker's config.json format
	// ("auths", "credsStore", "credHelpers"), e.g. one kept for kiln
	// alone. Empty reads Docker's ($DOCKER_CONFIG/config.json or
	// ~/.docker/config.json); without one the registry is used anonymously.
	CredentialsFile string
	// CAFile is a PEM file of certificate authorities trusted for the
	// registry's TLS certificate, besides the system's.
	CAFile string
	// PlainHTTP allows plain HTTP to a registry that is not on loopback
	// (a trusted network). A loopback registry that answers plain HTTP is
	// used without it.
	PlainHTTP bool
	// SpoolDir is where Put keeps content while its digest is computed
	// (the registry needs the digest before the upload ends). Empty is
	// os.TempDir(); it needs room for the largest artifact.
	SpoolDir string
	// UserAgent is sent with every request.
	UserAgent string
}

// Store is an OCI registry repository used as kiln's artifact store.
// Several kiln processes may share one: the registry is the only state.
type Store struct {
	loc   Location
	opts  Options
	authc *auth.Client

	mu        sync.Mutex
	pinged    bool
	plainHTTP bool
}

var _ kiln.ArtifactStore = (*Store)(nil)

// Open returns the store at url (oci://HOST[:PORT]/REPOSITORY). It reads
// the credentials and CA files but does not contact the registry; the
// first operation does, and says what is wrong if it cannot.
func Open(url string, opts Options) (*Store, error) {
	loc, err := ParseURL("artifacts", url)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.CAFile != "" {
		pool, err := caPool(opts.CAFile)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	rt := retry.NewTransport(tr)
	rt.Policy = func() retry.Policy { return retryPolicy }
	cred, err := credentialFunc(opts.CredentialsFile)
	if err != nil {
		return nil, err
	}
	c := &auth.Client{
		Client:     &http.Client{Transport: rt},
		Credential: cred,
		Cache:      auth.NewCache(),
	}
	if loc.Loopback() {
		// A token server beside a loopback registry is on loopback too;
		// oras-go refuses loopback token realms by default (against a
		// remote registry sending kiln to a local service).
		c.BlockedRealmPrefixes = withoutLoopback(auth.DefaultBlockedRealmPrefixes())
	}
	ua := opts.UserAgent
	if ua == "" {
		ua = "kiln"
	}
	c.SetUserAgent(ua)
	return &Store{loc: loc, opts: opts, authc: c}, nil
}

// retryPolicy retries 5xx, 429 and dial timeouts a few times; a registry
// that stays broken is reported within a couple of seconds.
var retryPolicy = &retry.GenericPolicy{
	Retryable: retry.DefaultPredicate,
	Backoff:   retry.DefaultBackoff,
	MinWait:   200 * time.Millisecond,
	MaxWait:   time.Second,
	MaxRetry:  3,
}

func withoutLoopback(ps []netip.Prefix) []netip.Prefix {
	out := ps[:0:0]
	for _, p := range ps {
		if !p.Addr().IsLoopback() {
			out = append(out, p)
		}
	}
	return out
}

func caPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts-ca", "cannot read the registry CA file: %v; give a PEM file of CA certificates", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts-ca", "%s has no PEM certificate; give the CA certificate that signed the registry's", file)
	}
	return pool, nil
}

func credentialFunc(file string) (auth.CredentialFunc, error) {
	if file != "" {
		if _, err := os.Stat(file); err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts-credentials", "cannot read the registry credentials file: %v; give a file in Docker's config.json format", err)
		}
		st, err := credentials.NewStore(file, credentials.StoreOptions{})
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "artifacts-credentials", "%s is not a Docker-format credentials file: %v", file, err)
		}
		return credentials.Credential(st), nil
	}
	st, err := credentials.NewStoreFromDocker(credentials.StoreOptions{})
	if err != nil {
		// No usable Docker config (no home, unreadable file): anonymous.
		return auth.StaticCredential("", auth.EmptyCredential), nil //nolint:nilerr // anonymous is the documented fallback
	}
	return credentials.Credential(st), nil
}

// Location returns where the store is.
func (s *Store) Location() Location { return s.loc }

// ready pings the registry once, choosing HTTPS or (loopback, or
// Options.PlainHTTP) plain HTTP, and turns a failure into a clear error.
func (s *Store) ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pinged {
		return nil
	}
	plain := s.opts.PlainHTTP && !s.loc.Loopback()
	err := s.ping(ctx, plain)
	if !plain && errors.Is(err, http.ErrSchemeMismatch) {
		if !s.loc.Loopback() && !s.opts.PlainHTTP {
			return kiln.Errorf(kiln.EUNAVAILABLE, "registry %s answers plain HTTP, not HTTPS; kiln uses plain HTTP only with a loopback registry or when asked: give the registry a TLS certificate, or pass --artifacts-plain-http if the network to it is trusted", s.loc.Host)
		}
		plain = true
		err = s.ping(ctx, plain)
	}
	if err != nil {
		return s.fail(err, "connect to %s", s.loc)
	}
	s.pinged, s.plainHTTP = true, plain
	return nil
}

func (s *Store) ping(ctx context.Context, plain bool) error {
	reg, err := remote.NewRegistry(s.loc.Host)
	if err != nil {
		return err
	}
	reg.Client, reg.PlainHTTP = s.authc, plain
	return reg.Ping(ctx)
}

// repo returns a client for one repository of the registry.
func (s *Store) repo(ctx context.Context, name string) (*remote.Repository, error) {
	if err := s.ready(ctx); err != nil {
		return nil, err
	}
	r, err := remote.NewRepository(s.loc.Host + "/" + name)
	if err != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "%s%s/%s is not a valid repository: %v", Scheme, s.loc.Host, name, err)
	}
	r.Client, r.PlainHTTP = s.authc, s.plainHTTP
	return r, nil
}

func (s *Store) scheme() string {
	if s.plainHTTP {
		return "http"
	}
	return "https"
}

// String returns the store's URL.
func (s *Store) String() string { return s.loc.String() }

var _ fmt.Stringer = (*Store)(nil)

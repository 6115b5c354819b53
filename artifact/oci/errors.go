package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/kiln-project/kiln"
)

// fail turns an error from the registry into a *kiln.Error that says what
// kiln was doing (format and args: the operation, the reference and the
// URL), what went wrong and what to do about it.
func (s *Store) fail(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var ke *kiln.Error
	if errors.As(err, &ke) {
		return err
	}
	what := fmt.Sprintf(format, args...)
	e := func(code, msg string) error {
		return &kiln.Error{Code: code, Message: what + ": " + msg, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		certErr   x509.CertificateInvalidError
		verErr    *tls.CertificateVerificationError
		recErr    tls.RecordHeaderError
		resp      *errcode.ErrorResponse
		netErr    *net.OpError
		dnsErr    *net.DNSError
	)
	switch {
	case errors.As(err, &unknownCA):
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry's TLS certificate is signed by an authority kiln does not trust (%v); give its CA certificate with --artifacts-ca FILE", unknownCA.Error()))
	case errors.As(err, &hostErr):
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry's TLS certificate is not for this host (%v); use the host name the certificate names in the oci:// URL", hostErr.Error()))
	case errors.As(err, &certErr):
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry's TLS certificate is not valid (%v); renew it or check the clock", certErr.Error()))
	case errors.As(err, &verErr):
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry's TLS certificate does not verify (%v); give its CA certificate with --artifacts-ca FILE", verErr.Err))
	case errors.As(err, &recErr):
		return e(kiln.EUNAVAILABLE, "the server does not speak TLS or HTTP as a registry would; check the host and port in the oci:// URL")
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return e(kiln.EUNAUTH, fmt.Sprintf("the registry asks for credentials and kiln has none for %s; log in with `docker login %s`, or put them in the file given by --artifacts-credentials", s.loc.Host, s.loc.Host))
	case errors.As(err, &resp):
		return s.failResponse(err, what, resp)
	case errors.Is(err, errdef.ErrNotFound):
		return e(kiln.ENOTFOUND, "not found in the registry")
	case errors.As(err, &dnsErr):
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("host %s is unknown (%v); check the host in the oci:// URL", dnsErr.Name, dnsErr.Err))
	case errors.As(err, &netErr):
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry cannot be reached (%v); check that it runs and that the oci:// URL's host and port are right", netErr.Err))
	}
	return &kiln.Error{Code: kiln.EINTERNAL, Message: what, Err: err}
}

func (s *Store) failResponse(err error, what string, resp *errcode.ErrorResponse) error {
	status := fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	if len(resp.Errors) > 0 {
		status += ": " + resp.Errors.Error()
	}
	where := what + " (" + resp.Method + " " + resp.URL.Redacted() + ")"
	e := func(code, msg string) error {
		return &kiln.Error{Code: code, Message: where + ": " + msg, Err: err}
	}
	switch c := resp.StatusCode; {
	case c == http.StatusUnauthorized:
		return e(kiln.EUNAUTH, fmt.Sprintf("the registry refused kiln's credentials (%s); log in with `docker login %s` (or put them in the file given by --artifacts-credentials), and check the user name and password", status, s.loc.Host))
	case c == http.StatusForbidden:
		return e(kiln.EFORBIDDEN, fmt.Sprintf("the registry denied kiln's account this (%s): it needs pull and push on %s and the repositories under it (and delete, for kiln artifact gc); grant them in the registry, or give credentials of an account that has them (%s)", status, s.loc.Repository, s.credentialsSource()))
	case c == http.StatusNotFound:
		return e(kiln.ENOTFOUND, fmt.Sprintf("not found in the registry (%s)", status))
	case c == http.StatusMethodNotAllowed:
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry does not allow this operation (%s); for deletes, enable them in the registry (distribution: storage.delete.enabled: true)", status))
	case c == http.StatusRequestEntityTooLarge:
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry refused the size (%s); raise the upload limit of the registry or the proxy in front of it", status))
	case c == http.StatusInsufficientStorage:
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry is out of storage (%s); free space on it or enlarge its storage, then retry", status))
	case c >= 500:
		return e(kiln.EUNAVAILABLE, fmt.Sprintf("the registry failed (%s); it may be out of disk or broken: check its log and storage, then retry", status))
	case c == http.StatusBadRequest:
		return e(kiln.EINVALID, fmt.Sprintf("the registry refused the request (%s)", status))
	}
	return e(kiln.EINTERNAL, "unexpected answer from the registry ("+status+")")
}

// credentialsSource says where kiln's registry credentials come from.
func (s *Store) credentialsSource() string {
	if s.opts.CredentialsFile != "" {
		return "--artifacts-credentials " + s.opts.CredentialsFile
	}
	return "`docker login " + s.loc.Host + "`, or a file given with --artifacts-credentials"
}

package kiln

import (
	"net"
	"net/url"
	"strings"
)

// CheckCleartext refuses to send a bearer token over plain http:// to a
// host other than loopback unless allow is set: on any other network the
// token crosses it readable by anyone on the path. field is the flag that
// named the URL, optIn the flag or variable that allows it anyway.
func CheckCleartext(u *url.URL, allow bool, field, optIn string) error {
	if u.Scheme != "http" || allow || IsLoopbackHost(u.Hostname()) {
		return nil
	}
	return FieldErrorf(EINVALID, field, "%s://%s is plain HTTP to a host that is not loopback: the token would cross the network in clear text; use https://, or accept the risk explicitly with %s",
		u.Scheme, u.Host, optIn)
}

// IsLoopbackHost reports whether host (a name or an IP, without port)
// is this machine's loopback.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

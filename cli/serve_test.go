package cli

import (
	"strings"
	"testing"
)

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		opts ServeOptions
		err  string // "" for allowed
	}{
		{ServeOptions{Listen: "127.0.0.1:8080"}, ""},
		{ServeOptions{Listen: "[::1]:8080"}, ""},
		{ServeOptions{Listen: "localhost:8080"}, ""},
		{ServeOptions{Listen: "0.0.0.0:8080"}, "no TLS certificate"},
		{ServeOptions{Listen: ":8080"}, "no TLS certificate"},
		{ServeOptions{Listen: "192.0.2.1:443", TLSCert: "c.pem", TLSKey: "k.pem"}, ""},
		{ServeOptions{Listen: "192.0.2.1:443", TLSCert: "c.pem"}, "both --tls-cert and --tls-key"},
		{ServeOptions{Listen: "0.0.0.0:8080", InsecureListen: true}, ""},
		{ServeOptions{Listen: "nonsense"}, "not HOST:PORT"},
	} {
		err := checkListen(c.opts)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%+v: %v", c.opts, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%+v: %v, want %q", c.opts, err, c.err)
		}
	}
}

// The OpenAPI document's server: --public-url, else --listen with the
// scheme TLS gives; relative ("") when --listen names no single host.
func TestServeAPIURL(t *testing.T) {
	for _, c := range []struct {
		opts ServeOptions
		want string
	}{
		{ServeOptions{Listen: "127.0.0.1:8080"}, "http://127.0.0.1:8080"},
		{ServeOptions{Listen: "[::1]:8080"}, "http://[::1]:8080"},
		{ServeOptions{Listen: "kiln.example.com:443", TLSCert: "c.pem", TLSKey: "k.pem"}, "https://kiln.example.com:443"},
		{ServeOptions{Listen: "0.0.0.0:8080", InsecureListen: true}, ""},
		{ServeOptions{Listen: ":8080"}, ""},
		{ServeOptions{Listen: "127.0.0.1:8080", PublicURL: "https://kiln.example.com/"}, "https://kiln.example.com"},
	} {
		if got := c.opts.APIURL(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.opts, got, c.want)
		}
	}
	for _, bad := range []string{"kiln.example.com", "ftp://kiln.example.com", "https://u:p@kiln.example.com", "https://kiln.example.com/?a=1", "https://"} {
		if err := checkPublicURL(bad); err == nil || !strings.Contains(err.Error(), "--public-url") {
			t.Errorf("%q: %v, want an error naming --public-url", bad, err)
		}
	}
	if err := checkPublicURL("https://kiln.example.com/kiln"); err != nil {
		t.Error(err)
	}
}

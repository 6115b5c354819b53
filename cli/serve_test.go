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

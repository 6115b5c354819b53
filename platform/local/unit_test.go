package local

import (
	"slices"
	"testing"

	"github.com/kiln-project/kiln"
)

func TestValidatePort(t *testing.T) {
	tests := []struct {
		pf   kiln.PortForward
		code string
	}{
		{kiln.PortForward{Host: "127.0.0.1:8080", Guest: 80}, ""},
		{kiln.PortForward{Host: "127.0.0.1:0", Guest: 80}, ""},
		{kiln.PortForward{Host: "[::1]:8080", Guest: 80}, ""},
		{kiln.PortForward{Host: "0.0.0.0:8080", Guest: 80}, kiln.EINVALID},
		{kiln.PortForward{Host: "192.0.2.1:8080", Guest: 80}, kiln.EINVALID},
		{kiln.PortForward{Host: "8080", Guest: 80}, kiln.EINVALID},
		{kiln.PortForward{Host: "localhost:8080", Guest: 80}, kiln.EINVALID},
		{kiln.PortForward{Host: "127.0.0.1:70000", Guest: 80}, kiln.EINVALID},
		{kiln.PortForward{Host: "127.0.0.1:8080", Guest: 0}, kiln.EINVALID},
		{kiln.PortForward{Host: "127.0.0.1:8080", Guest: 65536}, kiln.EINVALID},
	}
	for _, tt := range tests {
		err := validatePort(2, tt.pf)
		if kiln.ErrorCode(err) != tt.code {
			t.Errorf("validatePort(%+v) = %v; want code %q", tt.pf, err, tt.code)
		}
		if err != nil && kiln.ErrorField(err) != "ports[2]" {
			t.Errorf("validatePort(%+v): field %q, want ports[2]", tt.pf, kiln.ErrorField(err))
		}
	}
}

func TestValidateID(t *testing.T) {
	for _, id := range []string{"a", "appserver-3-x1", "0abc", "A.b_c-d"} {
		if err := validateID("id", id); err != nil {
			t.Errorf("validateID(%q) = %v", id, err)
		}
	}
	for _, id := range []string{"", "-a", ".a", "a/b", "a..b", "a b", string(make([]byte, 129))} {
		if err := validateID("id", id); kiln.ErrorCode(err) != kiln.EINVALID {
			t.Errorf("validateID(%q) = %v; want invalid", id, err)
		}
	}
}

func TestNspawnArgs(t *testing.T) {
	args := nspawnArgs(&record{Netns: "kiln-x", Machine: "kiln-x", Hostname: "web", Probe: "/usr/bin/kiln"}, "/d/rootfs")
	for _, want := range []string{
		"--boot", "--register=no", "--keep-unit", "--console=passive",
		"--network-namespace-path=/run/netns/kiln-x", "--directory=/d/rootfs",
		"--machine=kiln-x", "--hostname=web", "--bind-ro=/usr/bin/kiln:" + ProbePath,
		"--resolv-conf=off", "--timezone=off", "--link-journal=no",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("nspawn args %v lack %s", args, want)
		}
	}
	for _, a := range args {
		if a == "--volatile=overlay" || a == "--network-veth" {
			t.Errorf("unexpected %s: kiln brings its own overlay and netns", a)
		}
	}
}

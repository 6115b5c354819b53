package verify

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// defaultAddrTimeout is goss's addr and dns timeout.
const defaultAddrTimeout = 500 * time.Millisecond

// splitAddr splits an addr target, "tcp://host:port" or "udp://host:port";
// without a scheme it is tcp, as in goss.
func splitAddr(target string) (network, address string) {
	if n, a, ok := strings.Cut(target, "://"); ok {
		return n, a
	}
	return "tcp", target
}

// addrValues answers an addr resource by connecting, as goss does: a TCP
// address is reachable when the connection is accepted within the timeout.
// UDP has no handshake, so a udp address is reachable when the socket can
// be connected (a route exists), whether or not anything answers.
func (s *system) addrValues(ctx context.Context, r *Resource) valuer {
	return func(prop string) (any, error) {
		if prop != "reachable" {
			return nil, fmt.Errorf("unknown property %q", prop)
		}
		network, address := splitAddr(r.Target)
		d := net.Dialer{Timeout: timeout(r, defaultAddrTimeout)}
		if r.LocalAddress != "" {
			ip := net.ParseIP(r.LocalAddress)
			if strings.HasPrefix(network, "udp") {
				d.LocalAddr = &net.UDPAddr{IP: ip}
			} else {
				d.LocalAddr = &net.TCPAddr{IP: ip}
			}
		}
		// A refused or timed-out connection is the answer, not an error.
		conn, err := d.DialContext(ctx, network, address)
		if err == nil {
			conn.Close()
		}
		return err == nil, nil
	}
}

// interfaceValues answers an interface resource from the kernel's list of
// network interfaces: addrs are "address/prefix" strings (172.17.0.2/16).
func (s *system) interfaceValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		iface, err := net.InterfaceByName(r.Target)
		if prop == "exists" {
			return err == nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", r.Target, errNotExist)
		}
		switch prop {
		case "addrs":
			addrs, err := iface.Addrs()
			if err != nil {
				return nil, fmt.Errorf("addresses of %s: %w", r.Target, err)
			}
			out := []string{}
			for _, a := range addrs {
				out = append(out, a.String())
			}
			return out, nil
		case "mtu":
			return iface.MTU, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

// timeout is the resource's timeout, or def.
func timeout(r *Resource, def time.Duration) time.Duration {
	if r.TimeoutMS > 0 {
		return time.Duration(r.TimeoutMS) * time.Millisecond
	}
	return def
}

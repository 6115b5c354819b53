package verify

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Socket states in /proc/net/{tcp,udp}: TCP_LISTEN, and TCP_CLOSE which is
// how a bound, unconnected UDP socket shows.
const (
	tcpListen = "0A"
	udpBound  = "07"
)

// portValues answers a port resource ("tcp:22") from /proc/net. As in goss,
// tcp and tcp6 are separate tables: a server listening on [::]:80 shows as
// tcp6:80 with ip "::".
func (s *system) portValues(r *Resource) valuer {
	return func(prop string) (any, error) {
		proto, num, _ := strings.Cut(r.Target, ":")
		port, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("bad port %q", r.Target)
		}
		ips, err := listeningIPs(filepath.Join(s.proc, "net", proto), port, strings.HasPrefix(proto, "udp"))
		if err != nil {
			return nil, err
		}
		switch prop {
		case "listening":
			return len(ips) > 0, nil
		case "ip":
			return ips, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

// listeningIPs returns the local addresses of the sockets listening on port.
func listeningIPs(table string, port int, udp bool) ([]string, error) {
	f, err := os.Open(table)
	if err != nil {
		return nil, fmt.Errorf("read sockets: %w", err)
	}
	defer f.Close()
	want := tcpListen
	if udp {
		want = udpBound
	}
	seen := map[string]bool{}
	ips := []string{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != want {
			continue
		}
		hexIP, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		ip, err := procIP(hexIP)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", table, err)
		}
		if !seen[ip] {
			seen[ip] = true
			ips = append(ips, ip)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", table, err)
	}
	return ips, nil
}

// procIP decodes an address from /proc/net: 32-bit words in host (little
// endian) order.
func procIP(s string) (string, error) {
	b, err := hex.DecodeString(s)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return "", fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	return net.IP(b).String(), nil
}

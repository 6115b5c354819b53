package verify

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsTypes are the record types a dns resource may ask for ("MX:host"),
// goss's list.
var dnsTypes = []string{"A", "AAAA", "CAA", "CNAME", "MX", "NS", "PTR", "SRV", "SSHFP", "TXT"}

// Record types dnsmessage has no constant for.
const (
	typeSSHFP dnsmessage.Type = 44
	typeCAA   dnsmessage.Type = 257
)

var dnsTypeRE = regexp.MustCompile(`^[A-Z]+$`)

// splitDNS splits a dns target: "MX:example.org" asks for MX records,
// "example.org" for addresses (A and AAAA), as in goss.
func splitDNS(target string) (qtype, host string) {
	if t, h, ok := strings.Cut(target, ":"); ok && dnsTypeRE.MatchString(t) {
		return t, h
	}
	return "", target
}

// dnsValues answers a dns resource. A name without a record type and
// without a server is resolved as the instance's programs resolve it
// (/etc/hosts, then DNS; goss does the same). With a server, or with a
// type, kiln asks the server (default: the first nameserver of
// /etc/resolv.conf) for exactly that type. Records are reported as goss
// reports them: "10 mx.example.org." for MX, "0 5 443 target." for SRV,
// "0 issue ca.example" for CAA, sorted. A name that does not exist is not
// resolvable; a server that does not answer in time is an error.
func (s *system) dnsValues(ctx context.Context, r *Resource) valuer {
	var (
		once       sync.Once
		addrs      []string
		resolvable bool
		err        error
	)
	lookup := func() {
		qtype, host := splitDNS(r.Target)
		// goss tries three times when the lookup itself fails.
		for range 3 {
			addrs, err = s.dnsLookup(ctx, qtype, host, r.Server, timeout(r, defaultAddrTimeout))
			// As in goss, the system resolver's failures (no such name, no
			// server answering) mean "not resolvable"; only a lookup that
			// cannot be made, or a server that does not answer in time, is
			// an error.
			var dnsErr *net.DNSError
			if errors.As(err, &dnsErr) && !dnsErr.IsTimeout {
				addrs, err = []string{}, nil
			}
			if err == nil || ctx.Err() != nil {
				break
			}
		}
		if addrs == nil {
			addrs = []string{}
		}
		sort.Strings(addrs)
		resolvable = err == nil && len(addrs) > 0
	}
	return func(prop string) (any, error) {
		once.Do(lookup)
		if err != nil {
			return nil, err
		}
		switch prop {
		case "resolvable":
			return resolvable, nil
		case "addrs":
			return addrs, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

func (s *system) dnsLookup(ctx context.Context, qtype, host, server string, limit time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if qtype == "" && server == "" {
		addrs, err := net.DefaultResolver.LookupHost(ctx, host)
		if err != nil && ctx.Err() != nil {
			return nil, fmt.Errorf("DNS lookup of %s timed out after %s", host, limit)
		}
		return addrs, err
	}
	if server == "" {
		server = s.nameserver()
	}
	if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(server, "53")
	}
	if qtype == "" {
		a, errA := dnsQuery(ctx, server, host, dnsmessage.TypeA)
		aaaa, errAAAA := dnsQuery(ctx, server, host, dnsmessage.TypeAAAA)
		if errA != nil && errAAAA != nil {
			return nil, errA
		}
		return append(a, aaaa...), nil
	}
	t := map[string]dnsmessage.Type{
		"A": dnsmessage.TypeA, "AAAA": dnsmessage.TypeAAAA, "CNAME": dnsmessage.TypeCNAME,
		"MX": dnsmessage.TypeMX, "NS": dnsmessage.TypeNS, "PTR": dnsmessage.TypePTR,
		"SRV": dnsmessage.TypeSRV, "TXT": dnsmessage.TypeTXT, "SSHFP": typeSSHFP, "CAA": typeCAA,
	}[qtype]
	if t == 0 {
		return nil, fmt.Errorf("record type %s is not supported", qtype)
	}
	if t == dnsmessage.TypePTR {
		rev, err := reverseName(host)
		if err != nil {
			return nil, err
		}
		host = rev
	}
	return dnsQuery(ctx, server, host, t)
}

// nameserver is the first nameserver of /etc/resolv.conf, or the local one.
func (s *system) nameserver() string {
	f, err := os.Open(s.resolvConf)
	if err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "nameserver" {
				return net.JoinHostPort(fields[1], "53")
			}
		}
	}
	return "127.0.0.1:53"
}

// reverseName is the in-addr.arpa or ip6.arpa name of an IP address.
func reverseName(addr string) (string, error) {
	ip := net.ParseIP(addr)
	if ip == nil {
		return "", fmt.Errorf("a PTR lookup takes an IP address, found %q", addr)
	}
	var b strings.Builder
	if v4 := ip.To4(); v4 != nil {
		for i := 3; i >= 0; i-- {
			fmt.Fprintf(&b, "%d.", v4[i])
		}
		return b.String() + "in-addr.arpa.", nil
	}
	h := hex.EncodeToString(ip.To16())
	for i := len(h) - 1; i >= 0; i-- {
		b.WriteByte(h[i])
		b.WriteByte('.')
	}
	return b.String() + "ip6.arpa.", nil
}

// dnsQuery asks server for the records of one type, over UDP, and again
// over TCP when the answer was truncated; it returns them as goss shows
// them. A name with no such records gives none, not an error.
func dnsQuery(ctx context.Context, server, name string, t dnsmessage.Type) ([]string, error) {
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qname, err := dnsmessage.NewName(name)
	if err != nil {
		return nil, fmt.Errorf("bad name %q: %w", name, err)
	}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	msg := dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: t, Class: dnsmessage.ClassINET}},
	}
	q, err := msg.Pack()
	if err != nil {
		return nil, err
	}
	resp, err := dnsExchange(ctx, "udp", server, q)
	if err == nil && resp.Truncated {
		resp, err = dnsExchange(ctx, "tcp", server, q)
	}
	if err != nil {
		var ne net.Error
		if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, fmt.Errorf("DNS server %s did not answer in time", server)
		}
		return nil, fmt.Errorf("DNS server %s: %w", server, err)
	}
	if resp.ID != id {
		return nil, fmt.Errorf("DNS server %s answered another question", server)
	}
	var out []string
	for _, a := range resp.Answers {
		if a.Header.Type != t {
			continue
		}
		out = append(out, recordText(a.Body)...)
	}
	return out, nil
}

// recordText renders one answer as goss does.
func recordText(body dnsmessage.ResourceBody) []string {
	switch b := body.(type) {
	case *dnsmessage.AResource:
		return []string{net.IP(b.A[:]).String()}
	case *dnsmessage.AAAAResource:
		return []string{net.IP(b.AAAA[:]).String()}
	case *dnsmessage.CNAMEResource:
		return []string{b.CNAME.String()}
	case *dnsmessage.MXResource:
		return []string{strconv.Itoa(int(b.Pref)) + " " + b.MX.String()}
	case *dnsmessage.NSResource:
		return []string{b.NS.String()}
	case *dnsmessage.PTRResource:
		return []string{b.PTR.String()}
	case *dnsmessage.SRVResource:
		return []string{fmt.Sprintf("%d %d %d %s", b.Priority, b.Weight, b.Port, b.Target.String())}
	case *dnsmessage.TXTResource:
		return b.TXT
	case *dnsmessage.UnknownResource:
		d := b.Data
		switch b.Type {
		case typeCAA: // flags, tag length, tag, value
			if len(d) >= 2 && len(d) >= 2+int(d[1]) {
				return []string{fmt.Sprintf("%d %s %s", d[0], d[2:2+int(d[1])], d[2+int(d[1]):])}
			}
		case typeSSHFP: // algorithm, fingerprint type, fingerprint
			if len(d) >= 2 {
				return []string{fmt.Sprintf("%d %d %s", d[0], d[1], strings.ToUpper(hex.EncodeToString(d[2:])))}
			}
		}
	}
	return nil
}

func dnsExchange(ctx context.Context, network, server string, q []byte) (*dnsmessage.Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	buf := make([]byte, 65535)
	var n int
	if network == "tcp" {
		framed := binary.BigEndian.AppendUint16(nil, uint16(len(q)))
		if _, err := conn.Write(append(framed, q...)); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(conn, l[:]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(conn, buf[:n]); err != nil {
			return nil, err
		}
	} else {
		if _, err := conn.Write(q); err != nil {
			return nil, err
		}
		if n, err = conn.Read(buf); err != nil {
			return nil, err
		}
	}
	var m dnsmessage.Message
	if err := m.Unpack(buf[:n]); err != nil {
		return nil, fmt.Errorf("unreadable answer: %w", err)
	}
	return &m, nil
}

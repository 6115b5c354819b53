package verify

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// probeYAML parses text and probes this host, returning the results keyed
// "type id property".
func probeYAML(t *testing.T, text string) map[string]Result {
	t.Helper()
	suite, err := Parse("t.yaml", []byte(text))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	rep := Probe(context.Background(), suite)
	out := map[string]Result{}
	for _, r := range rep.Results {
		out[r.Type+" "+r.ID+" "+r.Property] = r
	}
	return out
}

// expect checks outcomes: key → "pass", "fail" or "fail:<error part>".
func expect(t *testing.T, got map[string]Result, want map[string]string) {
	t.Helper()
	for key, w := range want {
		r, ok := got[key]
		if !ok {
			t.Errorf("no result for %s", key)
			continue
		}
		outcome, errPart, _ := strings.Cut(w, ":")
		if string(r.Outcome) != outcome || (errPart != "" && !strings.Contains(r.Error, errPart)) {
			t.Errorf("%s: %s (expected %q, found %q, error %q), want %s", key, r.Outcome, r.Expected, r.Found, r.Error, w)
		}
	}
}

// TestProbeAddr connects to a loopback listener, a closed port, and from a
// given local address.
func TestProbeAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	got := probeYAML(t, fmt.Sprintf(`
addr:
  tcp://%[1]s: {reachable: true}
  %[1]s: {reachable: true, timeout: 1000}
  tcp://%[2]s: {reachable: false, timeout: 200}
  from:
    address: tcp://%[1]s
    local-address: 127.0.0.1
    reachable: true
  udp://127.0.0.1:9: {reachable: true}
`, ln.Addr(), closedAddr))
	expect(t, got, map[string]string{
		"addr tcp://" + ln.Addr().String() + " reachable": "pass",
		"addr " + ln.Addr().String() + " reachable":       "pass",
		"addr tcp://" + closedAddr + " reachable":         "pass",
		"addr from reachable":                             "pass",
		"addr udp://127.0.0.1:9 reachable":                "pass",
	})
}

// TestProbeInterface reads lo, which every Linux network namespace has.
func TestProbeInterface(t *testing.T) {
	got := probeYAML(t, `
interface:
  lo:
    exists: true
    mtu: {gt: 0}
    addrs: {contain-element: 127.0.0.1/8}
  kiln-no-such-if0:
    exists: false
  gone:
    name: kiln-no-such-if1
    exists: true
    mtu: 1500
`)
	expect(t, got, map[string]string{
		"interface lo exists":               "pass",
		"interface lo mtu":                  "pass",
		"interface lo addrs":                "pass",
		"interface kiln-no-such-if0 exists": "pass",
		"interface gone exists":             "fail",
		"interface gone mtu":                "fail:does not exist",
	})
}

// TestProbeMount reads this host's /proc/self/mountinfo for /, and a
// written mountinfo for escapes, stacked mounts and option lists.
func TestProbeMount(t *testing.T) {
	got := probeYAML(t, `
mount:
  /:
    exists: true
    filesystem: {match-regexp: "^[a-z0-9.]+$"}
    usage: {and: [{ge: 0}, {le: 100}]}
  /kiln/no/such/mount:
    exists: false
  gone:
    mountpoint: /kiln/no/such/mount
    exists: true
    opts: [rw]
`)
	expect(t, got, map[string]string{
		"mount / exists":                   "pass",
		"mount / filesystem":               "pass",
		"mount / usage":                    "pass",
		"mount /kiln/no/such/mount exists": "pass",
		"mount gone exists":                "fail",
		"mount gone opts":                  "fail:not a mount point",
	})

	proc := t.TempDir()
	if err := os.MkdirAll(filepath.Join(proc, "self"), 0o755); err != nil {
		t.Fatal(err)
	}
	info := `22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
25 22 0:5 / /dev rw,nosuid,relatime shared:2 - devtmpfs udev rw,size=1000k,mode=755
40 25 0:33 / /dev rw,nosuid,nosuid shared:9 master:3 - tmpfs tmpfs rw,mode=755,"a,b"
41 22 0:34 / /srv/my\040data rw - nfs srv\040x:/export rw,vers=4
`
	if err := os.WriteFile(filepath.Join(proc, "self", "mountinfo"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSystem()
	s.proc = proc
	suite, err := Parse("t.yaml", []byte(`
mount:
  /dev:
    exists: true
    opts: {consist-of: [rw, nosuid]}
    vfs-opts: {consist-of: [rw, mode=755, '"a,b"']}
    source: tmpfs
    filesystem: tmpfs
  /srv/my data:
    exists: true
    source: "srv x:/export"
    filesystem: nfs
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range s.probe(context.Background(), suite).Results {
		if r.Outcome != Pass {
			t.Errorf("%s %s: %s (expected %q, found %q, error %q)", r.ID, r.Property, r.Outcome, r.Expected, r.Found, r.Error)
		}
	}
}

// TestProbeMatching matches the file's own values: numbers, text, lists
// and mappings, with goss's matchers.
func TestProbeMatching(t *testing.T) {
	got := probeYAML(t, `
matching:
  zero: {content: 0, matches: 0}
  count: {content: 1, matches: {gt: 0}}
  status: {content: PASS, matches: [{not: FAIL}]}
  list: {content: [2, 3], matches: {contain-element: 2}}
  semver: {content: [1.0.1, 1.9.9], matches: {semver-constraint: ">1.0.0 <2.0.0 !=1.5.0"}}
  semver-not: {content: [1.0.1, 1.5.0], matches: {not: {semver-constraint: ">1.0.0 <2.0.0 !=1.5.0"}}}
  keys:
    content: {foo: bar, baz: bing}
    matches: {and: [{have-key: baz}, {have-key-with-value: {foo: bar}}, {not: {have-key: nope}}, {have-len: 2}]}
  wrong: {content: some string, matches: {match-regexp: "^other"}}
  not-a-map: {content: text, matches: {have-key: a}}
`)
	expect(t, got, map[string]string{
		"matching zero matches":       "pass",
		"matching count matches":      "pass",
		"matching status matches":     "pass",
		"matching list matches":       "pass",
		"matching semver matches":     "pass",
		"matching semver-not matches": "pass",
		"matching keys matches":       "pass",
		"matching wrong matches":      "fail",
		"matching not-a-map matches":  "fail:expected a mapping",
	})
}

// TestProbeDNS resolves localhost through /etc/hosts, and asks a DNS
// server on loopback for typed records, which come back as goss shows them.
func TestProbeDNS(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go serveDNS(pc)
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()

	got := probeYAML(t, fmt.Sprintf(`
dns:
  localhost:
    resolvable: true
    addrs: {contain-element: 127.0.0.1}
  kiln-no-such-host.invalid:
    resolvable: false
  MX:example.test:
    resolvable: true
    addrs: ["10 b.example.test.", "5 a.example.test."]
    server: %[1]s
  CAA:example.test:
    resolvable: true
    addrs: {consist-of: ["0 issue letsencrypt.org", "0 issuewild ;"]}
    server: %[1]s
  TXT:example.test:
    resolveable: true
    addrs: [Hello DNS]
    server: %[1]s
  SRV:_https._tcp.example.test:
    resolvable: true
    addrs: ["0 5 443 a.example.test."]
    server: %[1]s
  PTR:192.0.2.1:
    resolvable: true
    addrs: [host.example.test.]
    server: %[1]s
  example.test:
    resolvable: true
    addrs: {consist-of: [192.0.2.1, "2001:db8::1"]}
    server: %[1]s
  nothing.example.test:
    resolvable: false
    server: %[1]s
  silent:
    resolve: example.test
    resolvable: true
    timeout: 100
    server: %[2]s
`, pc.LocalAddr(), silent.LocalAddr()))
	want := map[string]string{
		"dns silent resolvable": "fail:did not answer in time",
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			want[k] = "pass"
		}
	}
	expect(t, got, want)
	if len(got) != 17 {
		t.Errorf("%d results, want 17", len(got))
	}
}

// serveDNS answers the questions TestProbeDNS asks, until pc is closed.
func serveDNS(pc net.PacketConn) {
	buf := make([]byte, 512)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		var q dnsmessage.Message
		if q.Unpack(buf[:n]) != nil || len(q.Questions) != 1 {
			continue
		}
		qq := q.Questions[0]
		name := qq.Name.String()
		hdr := dnsmessage.ResourceHeader{Name: qq.Name, Type: qq.Type, Class: dnsmessage.ClassINET, TTL: 60}
		mustName := func(s string) dnsmessage.Name { return dnsmessage.MustNewName(s) }
		resp := dnsmessage.Message{Header: dnsmessage.Header{ID: q.ID, Response: true, RecursionAvailable: true}, Questions: q.Questions}
		add := func(body dnsmessage.ResourceBody) {
			resp.Answers = append(resp.Answers, dnsmessage.Resource{Header: hdr, Body: body})
		}
		caa := func(flag byte, tag, value string) *dnsmessage.UnknownResource {
			return &dnsmessage.UnknownResource{Type: typeCAA, Data: append([]byte{flag, byte(len(tag))}, tag+value...)}
		}
		switch {
		case name == "example.test." && qq.Type == dnsmessage.TypeMX:
			add(&dnsmessage.MXResource{Pref: 10, MX: mustName("b.example.test.")})
			add(&dnsmessage.MXResource{Pref: 5, MX: mustName("a.example.test.")})
		case name == "example.test." && qq.Type == typeCAA:
			add(caa(0, "issue", "letsencrypt.org"))
			add(caa(0, "issuewild", ";"))
		case name == "example.test." && qq.Type == dnsmessage.TypeTXT:
			add(&dnsmessage.TXTResource{TXT: []string{"Hello DNS"}})
		case name == "_https._tcp.example.test." && qq.Type == dnsmessage.TypeSRV:
			add(&dnsmessage.SRVResource{Priority: 0, Weight: 5, Port: 443, Target: mustName("a.example.test.")})
		case name == "1.2.0.192.in-addr.arpa." && qq.Type == dnsmessage.TypePTR:
			add(&dnsmessage.PTRResource{PTR: mustName("host.example.test.")})
		case name == "example.test." && qq.Type == dnsmessage.TypeA:
			add(&dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}})
		case name == "example.test." && qq.Type == dnsmessage.TypeAAAA:
			add(&dnsmessage.AAAAResource{AAAA: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}})
		default:
			resp.RCode = dnsmessage.RCodeNameError
		}
		out, err := resp.Pack()
		if err == nil {
			_, _ = pc.WriteTo(out, from)
		}
	}
}

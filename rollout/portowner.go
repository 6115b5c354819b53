package rollout

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/kiln-project/kiln"
)

// CheckPortFree reports whether a front end could listen on listen: nil
// when it can, and otherwise an error naming the address and, when this
// machine's /proc tells, the process that holds it:
// "127.0.0.1:18099 is in use by another process (pid 4242)".
func CheckPortFree(listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return listenError(listen, err)
	}
	return ln.Close()
}

// listenError explains why listening on listen failed.
func listenError(listen string, err error) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return kiln.Errorf(kiln.ECONFLICT, "cannot listen on %s: %v", listen, err)
	}
	who := "another process"
	if pid := listenerPID(listen); pid > 0 {
		who = fmt.Sprintf("another process (pid %d)", pid)
	}
	return kiln.Errorf(kiln.ECONFLICT, "%s is in use by %s; stop it, or give the service another address", listen, who)
}

// listenerPID finds the process listening on listen through /proc/net/tcp
// and tcp6 (the socket's inode) and /proc/*/fd (who holds that inode).
// Best effort: 0 when it cannot tell (another user's process, no /proc).
func listenerPID(listen string) int {
	ap, err := netip.ParseAddrPort(listen)
	if err != nil {
		return 0
	}
	inode := ""
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if inode = listeningInode(f, ap); inode != "" {
			break
		}
	}
	if inode == "" {
		return 0
	}
	want := "socket:[" + inode + "]"
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && l == want {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

// listeningInode returns the inode of the socket in LISTEN state on ap (or
// on the wildcard address with ap's port) in a /proc/net/tcp{,6} file.
func listeningInode(file string, ap netip.AddrPort) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
			continue
		}
		host, port, ok := strings.Cut(fs[1], ":")
		if !ok {
			continue
		}
		p, err := strconv.ParseUint(port, 16, 16)
		if err != nil || uint16(p) != ap.Port() {
			continue
		}
		addr, ok := procAddr(host)
		if ok && (addr.Unmap() == ap.Addr().Unmap() || addr.IsUnspecified()) {
			return fs[9]
		}
	}
	return ""
}

// procAddr decodes /proc/net/tcp's address: 32-bit words in host (little
// endian) order.
func procAddr(h string) (netip.Addr, bool) {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return netip.Addr{}, false
	}
	for i := 0; i < len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	a, ok := netip.AddrFromSlice(b)
	return a, ok
}

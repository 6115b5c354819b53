package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// Egress: what kiln declares an instance must reach on the kiln machine's
// loopback (LaunchConfig.Egress: the agent's server for check-ins, at
// http://127.0.0.1:PORT) reaches the host from inside a VM as from a local
// instance, at the same address, and nothing else does (user networking
// keeps restrict=on: no route out).
//
//   - Host: QEMU's user network forwards guest connections to
//     egressGuestIP:PORT to a command it starts per connection
//     (guestfwd=…-cmd:), the supervisor binary in relay mode, which connects
//     its standard input and output to 127.0.0.1:PORT on the host. Only
//     the declared addresses have a forward.
//   - Guest: the agent reads the declared addresses from fw_cfg
//     (egressFwCfg) and listens on each loopback address inside the guest,
//     relaying every connection to egressGuestIP at the same port.
const (
	// egressGuestIP is the address in QEMU's user network (10.0.2.0/24)
	// that leads to the host's relays; it is neither the gateway (.2) nor
	// the DNS server (.3) nor the guest (.15).
	egressGuestIP = "10.0.2.100"
	// egressFwCfg is the fw_cfg file that tells the guest agent the
	// addresses, one HOST:PORT a line.
	egressFwCfg = "opt/org.kiln/egress"
	// egressRelayFlag starts SupervisorMain as a relay.
	egressRelayFlag = "--egress-relay"
)

// validateEgress checks an egress address before anything starts: an IPv4
// loopback address with a port (QEMU's user network is IPv4).
func validateEgress(i int, addr string) error {
	field := "config.egress[" + strconv.Itoa(i) + "]"
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, field, "egress address %q is not HOST:PORT; write e.g. 127.0.0.1:8080", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || ip.To4() == nil {
		return kiln.FieldErrorf(kiln.EINVALID, field, "egress address %q is not an IPv4 loopback address; a VM reaches only the kiln machine's 127.0.0.0/8, e.g. 127.0.0.1:8080", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return kiln.FieldErrorf(kiln.EINVALID, field, "egress port %q is not between 1 and 65535", port)
	}
	return nil
}

// egressArgs are the user network's guest forwards for rec.Egress (to be
// appended to -netdev user,…) and the fw_cfg option that tells the guest;
// relay is the supervisor command QEMU starts per connection.
func egressArgs(egress []string, relay []string) (netdev string, fwcfg []string, err error) {
	if len(egress) == 0 {
		return "", nil, nil
	}
	for _, a := range relay {
		// QEMU splits the command at spaces, and its option parser at commas.
		if a == "" || strings.ContainsAny(a, " ,\t\n\"'\\") {
			return "", nil, kiln.Errorf(kiln.EUNAVAILABLE, "the kiln binary's path %q has a space, comma or quote, which QEMU's guest forward cannot start; install kiln at a plain path for VM egress", a)
		}
	}
	var b strings.Builder
	for _, addr := range egress {
		_, port, _ := net.SplitHostPort(addr)
		fmt.Fprintf(&b, ",guestfwd=tcp:%s:%s-cmd:%s %s %s", egressGuestIP, port, strings.Join(relay, " "), egressRelayFlag, addr)
	}
	return b.String(), []string{"-fw_cfg", "name=" + egressFwCfg + ",string=" + strings.Join(egress, ";")}, nil
}

// relayMain is the supervisor binary as QEMU's guest forward command: it
// connects its standard input and output (one socket: QEMU gives the
// guest's connection as stdin, stdout and stderr) to addr, a loopback
// address kiln declared, until both sides have closed. It writes nothing
// of its own: whatever it wrote would reach the guest's connection. A
// failed dial closes the guest's connection, as a refused one would.
func relayMain(addr string) int {
	if validateEgress(0, addr) != nil {
		return 2
	}
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return 1
	}
	defer c.Close()
	done := make(chan struct{}, 2)
	go func() {
		_, _ = io.Copy(c, os.Stdin)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(os.Stdout, c)
		// The guest sees the end of the host's side; its own side may
		// still be sending.
		_ = syscall.Shutdown(int(os.Stdout.Fd()), syscall.SHUT_WR)
		done <- struct{}{}
	}()
	<-done
	<-done
	return 0
}

// guestEgress is the agent's side: it listens on each address QEMU's
// fw_cfg declares, inside the guest, and relays connections to
// egressGuestIP at the same port. It returns at once when none is
// declared; a listen that fails is logged (the agent's exec channel works
// regardless).
func guestEgress(ctx context.Context, log *slog.Logger) {
	addrs := readEgressFwCfg(ctx)
	for _, addr := range addrs {
		if err := validateEgress(0, addr); err != nil {
			log.Error("egress", "err", err)
			continue
		}
		ln, err := net.Listen("tcp4", addr)
		if err != nil {
			log.Error("egress: listen", "addr", addr, "err", err)
			continue
		}
		_, port, _ := net.SplitHostPort(addr)
		to := net.JoinHostPort(egressGuestIP, port)
		log.Info("egress relaying", "listen", addr, "to", to)
		go serveEgress(ln, to, log)
	}
}

func serveEgress(ln net.Listener, to string, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("egress: accept", "err", err)
			}
			return
		}
		go func() {
			defer c.Close()
			u, err := net.DialTimeout("tcp4", to, 10*time.Second)
			if err != nil {
				log.Error("egress: dial the host's relay", "to", to, "err", err)
				return
			}
			defer u.Close()
			instancedir.Splice(u, c)
		}()
	}
}

// readEgressFwCfg reads the declared egress addresses from fw_cfg's sysfs
// view, loading the qemu_fw_cfg module when the view is missing; none on a
// machine that is not a kiln VM.
func readEgressFwCfg(ctx context.Context) []string {
	const sysfs = "/sys/firmware/qemu_fw_cfg"
	if _, err := os.Stat(sysfs); err != nil {
		_ = exec.CommandContext(ctx, "modprobe", "qemu_fw_cfg").Run()
	}
	b, err := os.ReadFile(filepath.Join(sysfs, "by_name", egressFwCfg, "raw"))
	if err != nil {
		return nil
	}
	var out []string
	for _, a := range strings.Split(strings.TrimSpace(string(b)), ";") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

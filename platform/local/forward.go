package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/vishvananda/netns"
)

// forwarder accepts TCP connections on a host loopback address and connects
// each to a port on the instance's own loopback, inside its network
// namespace. Only the dial happens inside the namespace: a socket stays in
// the namespace it was created in, whichever thread uses it afterwards.
type forwarder struct {
	ln    net.Listener
	guest int
	ns    netns.NsHandle
	log   *slog.Logger
	wg    sync.WaitGroup
}

// validatePort checks a forward before anything is started.
func validatePort(i int, pf kiln.PortForward) error {
	field := "ports[" + strconv.Itoa(i) + "]"
	host, port, err := net.SplitHostPort(pf.Host)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, field, "host address %q is not HOST:PORT; write e.g. 127.0.0.1:8080", pf.Host)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return kiln.FieldErrorf(kiln.EINVALID, field, "host address %q is not a loopback address; the local platform forwards only from loopback, e.g. 127.0.0.1:8080", pf.Host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return kiln.FieldErrorf(kiln.EINVALID, field, "host port %q is not a port number (0 picks a free one)", port)
	}
	if pf.Guest < 1 || pf.Guest > 65535 {
		return kiln.FieldErrorf(kiln.EINVALID, field, "guest port %d is not between 1 and 65535", pf.Guest)
	}
	return nil
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				f.log.Error("accept", "addr", f.ln.Addr().String(), "err", err)
			}
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.relay(c)
		}()
	}
}

func (f *forwarder) relay(c net.Conn) {
	defer c.Close()
	g, err := dialIn(f.ns, f.guest, 5*time.Second)
	if err != nil {
		f.log.Warn("forward: connect into instance", "guest_port", f.guest, "err", err)
		return
	}
	defer g.Close()
	instancedir.Splice(g, c)
}

func (f *forwarder) close() {
	f.ln.Close()
	f.wg.Wait()
}

// dialIn connects to the instance's loopback on port, trying IPv4 then IPv6.
func dialIn(ns netns.NsHandle, port int, timeout time.Duration) (net.Conn, error) {
	return inNetns(ns, func() (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			if c6, err6 := d.DialContext(ctx, "tcp6", net.JoinHostPort("::1", strconv.Itoa(port))); err6 == nil {
				c, err = c6, nil
			}
		}
		return c, err
	})
}

// inNetns runs open (a dial or a listen) inside the network namespace ns
// and returns what it opened: the socket stays in ns. setns changes only
// the calling thread, so open runs on a locked thread of its own, which is
// left locked (and so discarded by the runtime) if it cannot return to
// the host's namespace; what open returned is then closed.
func inNetns[C io.Closer](ns netns.NsHandle, open func() (C, error)) (C, error) {
	type result struct {
		c   C
		err error
	}
	ch := make(chan result, 1)
	go func() {
		var zero C
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, err}
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			runtime.UnlockOSThread()
			ch <- result{zero, fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		c, err := open()
		if serr := netns.Set(orig); serr != nil {
			if err == nil {
				c.Close()
			}
			ch <- result{zero, fmt.Errorf("return to host network namespace: %w", serr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

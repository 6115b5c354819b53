package local

import (
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
	"github.com/vishvananda/netns"
)

// egress is the reverse of a forwarder: it listens on a loopback address
// inside the instance's network namespace and connects each connection to
// the same address on the host. Only the listen happens inside the
// namespace (the socket stays there); the dials are the supervisor's own,
// on the host. It exists only for the addresses kiln declares (the agent's
// server, LaunchConfig.Egress): the instance gets no route out.
type egress struct {
	ln   net.Listener
	host string // the host address connected to, the same as ln's
	log  *slog.Logger
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]bool // open, either side; closed by close
	done  bool
}

// validateEgress checks an egress address before anything is started: an
// IPv4 or IPv6 loopback address with a port.
func validateEgress(i int, addr string) error {
	field := "config.egress[" + strconv.Itoa(i) + "]"
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, field, "egress address %q is not HOST:PORT; write e.g. 127.0.0.1:8080", addr)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return kiln.FieldErrorf(kiln.EINVALID, field, "egress address %q is not a loopback address; an instance reaches only the kiln machine's loopback, e.g. 127.0.0.1:8080", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return kiln.FieldErrorf(kiln.EINVALID, field, "egress port %q is not between 1 and 65535", port)
	}
	return nil
}

// listenIn listens on addr inside the network namespace ns.
func listenIn(ns netns.NsHandle, addr string) (net.Listener, error) {
	return inNetns(ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
}

func (e *egress) serve() {
	for {
		c, err := e.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				e.log.Error("egress accept", "addr", e.host, "err", err)
			}
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.relay(c)
		}()
	}
}

// track remembers an open connection for close; false once closing.
func (e *egress) track(c net.Conn) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.done {
		return false
	}
	if e.conns == nil {
		e.conns = map[net.Conn]bool{}
	}
	e.conns[c] = true
	return true
}

func (e *egress) untrack(c net.Conn) {
	e.mu.Lock()
	delete(e.conns, c)
	e.mu.Unlock()
	c.Close()
}

func (e *egress) relay(c net.Conn) {
	if !e.track(c) {
		c.Close()
		return
	}
	defer e.untrack(c)
	h, err := net.DialTimeout("tcp", e.host, 5*time.Second)
	if err != nil {
		e.log.Warn("egress: connect to the host", "addr", e.host, "err", err)
		return
	}
	if !e.track(h) {
		h.Close()
		return
	}
	defer e.untrack(h)
	instancedir.Splice(h, c)
}

// close stops listening and ends the open connections (the instance is
// gone by then; a host server that keeps its half open must not hold the
// supervisor up).
func (e *egress) close() {
	e.ln.Close()
	e.mu.Lock()
	e.done = true
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()
}

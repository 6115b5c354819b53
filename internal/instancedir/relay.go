package instancedir

import (
	"io"
	"net"
)

// Splice copies between a and b both ways until both directions have
// ended: each side's end of input half-closes the other's writing side,
// so a peer that is still sending is not cut off. It is the relay of the
// drivers' port forwards and loopback egress. The caller closes a and b.
func Splice(a, b net.Conn) {
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(a, b)
	go pipe(b, a)
	<-done
	<-done
}

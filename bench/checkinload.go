package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// CheckinLoad is the bounded check-in load: Clients kept-alive
// connections, each with one request in flight, post N check-ins over
// Pool instance ids to the check-in endpoint at Addr (host:port) with
// Token. The first round over the pool creates the instances, later ones
// check them in again. Requests are written as HTTP/1.1 by hand so the
// cores go to the server rather than to net/http's client.
type CheckinLoad struct {
	Addr, Path, Token string
	N, Clients, Pool  int
}

// LoadResult is what a CheckinLoad saw.
type LoadResult struct {
	N       int
	Elapsed time.Duration
	// CPU is this process's user and system time over the run (server
	// and load generator when both run in it).
	CPU    time.Duration
	Failed int64
	// FirstError is the first failure's status or error.
	FirstError string
}

// PerSecond is the check-ins per second.
func (r LoadResult) PerSecond() float64 { return float64(r.N) / r.Elapsed.Seconds() }

// Run posts the check-ins; it stops early when ctx ends.
func (l CheckinLoad) Run(ctx context.Context) (LoadResult, error) {
	if l.Clients <= 0 || l.N <= 0 || l.Pool <= 0 {
		return LoadResult{}, fmt.Errorf("check-in load: clients, count and pool must be positive")
	}
	conns := make([]net.Conn, l.Clients)
	var d net.Dialer
	for w := range conns {
		c, err := d.DialContext(ctx, "tcp", l.Addr)
		if err != nil {
			for _, c := range conns[:w] {
				_ = c.Close()
			}
			return LoadResult{}, fmt.Errorf("check-in load: %w", err)
		}
		conns[w] = c
	}
	stop := context.AfterFunc(ctx, func() {
		for _, c := range conns {
			_ = c.SetDeadline(time.Now())
		}
	})
	defer stop()
	head := "POST " + l.Path + " HTTP/1.1\r\nHost: " + l.Addr +
		"\r\nContent-Type: application/json\r\nAuthorization: Bearer " + l.Token + "\r\nContent-Length: "
	var next, failed atomic.Int64
	var firstErr atomic.Value
	fail := func(msg string) {
		failed.Add(1)
		firstErr.CompareAndSwap(nil, msg)
	}
	cpu0 := ProcessCPU()
	t0 := time.Now()
	var wg sync.WaitGroup
	for w, conn := range conns {
		wg.Go(func() {
			defer conn.Close()
			br := bufio.NewReader(conn)
			var req, body, buf []byte
			for {
				i := next.Add(1)
				if i > int64(l.N) {
					return
				}
				id := i % int64(l.Pool)
				// {"instance_id":"i-%05d","hostname":"h-%d-%d","environment":"prod","release":{"image":"appserver","version":"1"}}
				body = append(body[:0], `{"instance_id":"i-`...)
				for d := int64(10_000); d > 1 && id < d; d /= 10 {
					body = append(body, '0')
				}
				body = strconv.AppendInt(append(strconv.AppendInt(append(strconv.AppendInt(body, id, 10), `","hostname":"h-`...), int64(w), 10), '-'), id, 10)
				body = append(body, `","environment":"prod","release":{"image":"appserver","version":"1"}}`...)
				req = append(append(strconv.AppendInt(append(req[:0], head...), int64(len(body)), 10), "\r\n\r\n"...), body...)
				if _, err := conn.Write(req); err != nil {
					fail(err.Error())
					return
				}
				status, msg, err := readResponse(br, &buf)
				if err != nil {
					fail(err.Error())
					return
				}
				if status != http.StatusOK {
					fail(strconv.Itoa(status) + " " + string(msg))
				}
			}
		})
	}
	wg.Wait()
	res := LoadResult{N: l.N, Elapsed: time.Since(t0), CPU: ProcessCPU() - cpu0, Failed: failed.Load()}
	if v, ok := firstErr.Load().(string); ok {
		res.FirstError = v
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	if res.Failed > 0 {
		return res, fmt.Errorf("check-in load: %d of %d check-ins failed; first: %s", res.Failed, l.N, res.FirstError)
	}
	return res, nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length (what
// the API sends) from br: its status and body, the body in *buf, reused.
// It parses no more than that, so that the load generator's CPU goes to
// sending check-ins rather than to net/http's response objects.
func readResponse(br *bufio.Reader, buf *[]byte) (int, []byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		switch {
		case !ok:
			return 0, nil, fmt.Errorf("malformed header line %q", line)
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil || length < 0 {
				return 0, nil, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, fmt.Errorf("response with Transfer-Encoding %q; the load reads Content-Length bodies only", value)
		}
	}
	if length < 0 {
		return 0, nil, fmt.Errorf("response %d without Content-Length", status)
	}
	if cap(*buf) < length {
		*buf = make([]byte, length)
	}
	body := (*buf)[:length]
	if _, err := io.ReadFull(br, body); err != nil {
		return 0, nil, err
	}
	return status, body, nil
}

// ProcessCPU is the user and system CPU time this process has used.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

package bench

import (
	"bufio"
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
			var req []byte
			for {
				i := next.Add(1)
				if i > int64(l.N) {
					return
				}
				id := i % int64(l.Pool)
				body := fmt.Sprintf(`{"instance_id":"i-%05d","hostname":"h-%d-%d","environment":"prod","release":{"image":"appserver","version":"1"}}`, id, w, id)
				req = append(append(append(append(req[:0], head...), strconv.Itoa(len(body))...), "\r\n\r\n"...), body...)
				if _, err := conn.Write(req); err != nil {
					fail(err.Error())
					return
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					fail(err.Error())
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					fail(resp.Status + " " + string(msg))
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

// ProcessCPU is the user and system CPU time this process has used.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

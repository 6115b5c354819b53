package rollout

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// load is a bounded load generator on loopback: workers send GET / through
// the front end one after the other until stopped, until max requests are
// sent, or until limit passes.
type load struct {
	mu       sync.Mutex
	sent     int
	failed   []string
	bodies   map[string]int
	lat      []time.Duration
	started  time.Time
	duration time.Duration
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

func startLoad(addr string, workers, max int, limit time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	l := &load{bodies: map[string]int{}, cancel: cancel, started: time.Now()}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.mu.Lock()
				if l.sent >= max {
					l.mu.Unlock()
					return
				}
				l.sent++
				l.mu.Unlock()
				t0 := time.Now()
				body, err := get(client, "http://"+addr+"/")
				d := time.Since(t0)
				l.mu.Lock()
				l.lat = append(l.lat, d)
				if err != nil {
					l.failed = append(l.failed, err.Error())
				} else {
					l.bodies[body]++
				}
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, b)
	}
	return string(b), nil
}

// wait waits until max requests have been sent (or the limit passed).
func (l *load) wait() {
	l.wg.Wait()
	l.stop()
}

// stop ends the load and waits for the requests in flight.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
	l.duration = time.Since(l.started)
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lat := slices.Clone(l.lat)
	slices.Sort(lat)
	p := func(q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[int(q*float64(len(lat)-1))]
	}
	return fmt.Sprintf("%d requests sent, %d failed, over %s (%.0f req/s); latency p50 %s p99 %s max %s",
		l.sent, len(l.failed), l.duration.Round(time.Millisecond), float64(l.sent)/l.duration.Seconds(),
		p(0.5).Round(time.Microsecond), p(0.99).Round(time.Microsecond), p(1).Round(time.Microsecond))
}

package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/kiln-project/kiln"
)

// healthTimeout bounds one health check.
const healthTimeout = 2 * time.Second

var healthClient = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
	Timeout:   healthTimeout,
	CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect answers: the instance is up
	},
}

// Check runs one health check against an instance's forwarded address.
// nil means healthy.
func Check(ctx context.Context, addr string, h kiln.HealthCheck) error {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	switch h.Kind {
	case kiln.HealthHTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+h.Path, nil)
		if err != nil {
			return err
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			return fmt.Errorf("GET %s: %w", h.Path, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode >= 400 {
			return fmt.Errorf("GET %s answered %s", h.Path, resp.Status)
		}
		return nil
	default:
		// A forward accepts even when nothing listens inside, then closes:
		// a TCP check must see the connection stay open a moment.
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			return fmt.Errorf("connection closed at once: nothing listens on the instance's port")
		}
		return nil
	}
}

// WaitHealthy checks until the instance is healthy or timeout passes.
func WaitHealthy(ctx context.Context, addr string, h kiln.HealthCheck, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := Check(ctx, addr, h)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not healthy after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

package verify

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// defaultHTTPTimeout is goss's: 5 s.
const defaultHTTPTimeout = 5 * time.Second

// httpValues makes the request once and answers status, body and headers
// ("Name: value" lines, sorted, one per value).
func (s *system) httpValues(ctx context.Context, r *Resource) valuer {
	var res httpResponse
	done := false
	return func(prop string) (any, error) {
		if !done {
			done = true
			res = doHTTP(ctx, r)
		}
		if res.err != nil {
			return nil, res.err
		}
		switch prop {
		case "status":
			return res.status, nil
		case "body":
			return res.body, nil
		case "headers":
			return res.headers, nil
		}
		return nil, fmt.Errorf("unknown property %q", prop)
	}
}

type httpResponse struct {
	status  int
	body    string
	headers string
	err     error
}

func doHTTP(ctx context.Context, r *Resource) httpResponse {
	o := r.HTTP
	if o == nil {
		o = &HTTPOptions{}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: o.AllowInsecure} //nolint:gosec // the test author asked for it
	if o.Proxy != "" {
		pu, err := url.Parse(o.Proxy)
		if err != nil {
			return httpResponse{err: fmt.Errorf("proxy %q: %w", o.Proxy, err)}
		}
		tr.Proxy = http.ProxyURL(pu)
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeoutOf(r, defaultHTTPTimeout)}
	if o.NoFollowRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	method := o.Method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if o.RequestBody != "" {
		body = strings.NewReader(o.RequestBody)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.Target, body)
	if err != nil {
		return httpResponse{err: err}
	}
	for _, h := range o.RequestHeaders {
		k, v, _ := strings.Cut(h, ":")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.EqualFold(k, "Host") {
			if req.Host == req.URL.Host {
				req.Host = v
			}
			continue
		}
		req.Header.Add(k, v)
	}
	if o.Username != "" || o.Password != "" {
		req.SetBasicAuth(o.Username, o.Password)
	}
	resp, err := client.Do(req)
	if err != nil {
		return httpResponse{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxContents+1))
	if err != nil {
		return httpResponse{err: fmt.Errorf("read the response body: %w", err)}
	}
	if len(b) > maxContents {
		return httpResponse{err: fmt.Errorf("response body larger than %d bytes", maxContents)}
	}
	var lines []string
	for k, vs := range resp.Header {
		for _, v := range vs {
			lines = append(lines, k+": "+v)
		}
	}
	sort.Strings(lines)
	return httpResponse{status: resp.StatusCode, body: string(b), headers: strings.Join(lines, "\n")}
}

package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/kiln-project/kiln"
)

// CheckinPath is the API path agents post check-ins to.
const CheckinPath = "/api/v1/instances/checkin"

// Agent sends a server's check-in to kiln serve with a plain HTTP client.
type Agent struct {
	Client *http.Client
	// Server is the base URL of kiln serve, http://kiln.internal:8080.
	Server string
	// Token is sent as a bearer token when set.
	Token string
	// AllowHTTP lets the token go over plain http:// to a host that is
	// not loopback (--allow-http); without it such a server is refused.
	AllowHTTP bool
}

// CheckIn posts c and returns what the server recorded. Errors carry the
// server's message.
func (a *Agent) CheckIn(ctx context.Context, c *kiln.Checkin) (*kiln.CheckinResult, error) {
	u, err := url.Parse(a.Server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--server", "%q is not a server URL; write http://HOST:PORT", a.Server)
	}
	if a.Token != "" {
		if err := kiln.CheckCleartext(u, a.AllowHTTP, "--server", "--allow-http (env KILN_ALLOW_HTTP=1)"); err != nil {
			return nil, err
		}
	}
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode check-in: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(a.Server, "/")+CheckinPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("check-in request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if a.Token != "" {
		req.Header.Set("Authorization", "Bearer "+a.Token)
	}
	client := a.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "cannot reach kiln at %s: %v; check --server and that kiln serve runs", a.Server, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "reading kiln's answer: %v", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Code    string `json:"code"`
			Field   string `json:"field"`
			Message string `json:"message"`
		}
		if json.Unmarshal(data, &e) == nil && e.Message != "" {
			code := e.Code
			if code == "" {
				code = kiln.EINTERNAL
			}
			return nil, &kiln.Error{Code: code, Field: e.Field, Message: "kiln at " + a.Server + " refused the check-in: " + e.Message}
		}
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "kiln at %s answered %s", a.Server, resp.Status)
	}
	var res kiln.CheckinResult
	if err := json.Unmarshal(data, &res); err != nil {
		return nil, fmt.Errorf("decode kiln's answer: %w", err)
	}
	return &res, nil
}

package client

import (
	"context"
	"net/http"

	kiln "github.com/kiln-project/kiln"
)

var _ kiln.RunStarter = (*Client)(nil)

// StartRuns asks the server to queue runs of an estate (a directory on the
// server) for its worker.
func (c *Client) StartRuns(ctx context.Context, req kiln.RunRequest) ([]*kiln.Run, error) {
	var out struct {
		Runs []*kiln.Run `json:"runs"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/runs", nil, req, &out); err != nil {
		return nil, err
	}
	return out.Runs, nil
}

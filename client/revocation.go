package client

import (
	"context"
	"net/http"
	"time"

	kiln "github.com/kiln-project/kiln"
)

var _ kiln.Revoker = (*Client)(nil)

type revokeOut struct {
	Revocations []*kiln.Revocation        `json:"revocations"`
	Scheduled   *kiln.ScheduledRevocation `json:"scheduled"`
}

// Revoke implements kiln.Revoker.
func (c *Client) Revoke(ctx context.Context, ref kiln.VersionRef, reason string) ([]*kiln.Revocation, error) {
	var out revokeOut
	if err := c.do(ctx, http.MethodPost, versionPath(ref)+"/revoke", nil, map[string]any{"reason": reason}, &out); err != nil {
		return nil, err
	}
	return out.Revocations, nil
}

// Restore implements kiln.Revoker.
func (c *Client) Restore(ctx context.Context, ref kiln.VersionRef, reason string) ([]kiln.VersionRef, error) {
	var out struct {
		Restored []kiln.VersionRef `json:"restored"`
	}
	if err := c.do(ctx, http.MethodPost, versionPath(ref)+"/restore", nil, map[string]any{"reason": reason}, &out); err != nil {
		return nil, err
	}
	return out.Restored, nil
}

// ScheduleRevocation implements kiln.Revoker.
func (c *Client) ScheduleRevocation(ctx context.Context, ref kiln.VersionRef, at time.Time, reason string) (*kiln.ScheduledRevocation, error) {
	var out revokeOut
	if err := c.do(ctx, http.MethodPost, versionPath(ref)+"/revoke", nil, map[string]any{"reason": reason, "at": at.UTC()}, &out); err != nil {
		return nil, err
	}
	if out.Scheduled == nil {
		return nil, kiln.Errorf(kiln.EINTERNAL, "the server answered the revocation of %s at %s without the schedule", ref, at.UTC().Format(time.RFC3339))
	}
	return out.Scheduled, nil
}

// ScheduledRevocations implements kiln.Revoker.
func (c *Client) ScheduledRevocations(ctx context.Context) ([]*kiln.ScheduledRevocation, error) {
	var out struct {
		Scheduled []*kiln.ScheduledRevocation `json:"scheduled"`
	}
	return out.Scheduled, c.do(ctx, http.MethodGet, "/api/v1/revocations", nil, nil, &out)
}

// CancelScheduledRevocation implements kiln.Revoker.
func (c *Client) CancelScheduledRevocation(ctx context.Context, ref kiln.VersionRef) error {
	return c.do(ctx, http.MethodDelete, versionPath(ref)+"/revoke", nil, nil, nil)
}

// ApplyDueRevocations implements kiln.Revoker: the server applies its
// scheduled revocations itself.
func (c *Client) ApplyDueRevocations(context.Context) ([]*kiln.Revocation, error) {
	return nil, kiln.Errorf(kiln.EUNAVAILABLE, "kiln serve applies scheduled revocations itself; nothing to do through --server")
}

package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	kiln "github.com/kiln-project/kiln"
)

// The service and rollout commands work through the server: it keeps the
// services, runs their front ends and instances, and runs rollouts.
var (
	_ kiln.ServiceStore   = (*Client)(nil)
	_ kiln.RolloutStore   = (*Client)(nil)
	_ kiln.RolloutStarter = (*Client)(nil)
	_ kiln.ServiceHost    = (*Client)(nil)
)

func servicePath(name string) string { return "/api/v1/services/" + url.PathEscape(name) }

// serviceView is the answer of GET /api/v1/services/{service}.
type serviceView struct {
	Service  *kiln.Service     `json:"service"`
	Members  []*kiln.Member    `json:"members"`
	FrontEnd *kiln.ProxyStatus `json:"front_end"`
	Rollouts []*kiln.Rollout   `json:"rollouts"`
}

func (c *Client) service(ctx context.Context, name string, rollouts int) (*serviceView, error) {
	var out serviceView
	q := url.Values{"rollouts": {strconv.Itoa(rollouts)}}
	if err := c.do(ctx, http.MethodGet, servicePath(name), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CreateService implements kiln.ServiceStore; the server fills in the
// defaults and s is updated with the service as recorded.
func (c *Client) CreateService(ctx context.Context, s *kiln.Service) error {
	in := map[string]any{"name": s.Name, "image": s.Image, "environment": s.Environment, "replicas": s.Replicas, "listen": s.Listen,
		"port": s.Port, "max_surge": s.MaxSurge, "min_healthy_percent": s.MinHealthyPercent,
		"bake_time_ns": s.BakeTime, "max_error_rate": s.MaxErrorRate}
	if s.BatchSize != 0 {
		in["batch_size"] = s.BatchSize
	}
	if s.Follow != "" {
		in["follow"] = s.Follow
	}
	if s.MetricsListen != "" {
		in["metrics_listen"] = s.MetricsListen
	}
	if !s.Policy.IsZero() {
		in["policy"] = s.Policy
	}
	if s.Health.Kind != "" {
		in["health"] = s.Health
	}
	if s.Platform != "" {
		in["platform"] = s.Platform
	}
	return c.do(ctx, http.MethodPost, "/api/v1/services", nil, in, s)
}

// FindService implements kiln.ServiceStore.
func (c *Client) FindService(ctx context.Context, name string) (*kiln.Service, error) {
	v, err := c.service(ctx, name, 0)
	if err != nil {
		return nil, err
	}
	return v.Service, nil
}

// ListServices implements kiln.ServiceStore.
func (c *Client) ListServices(ctx context.Context) ([]*kiln.Service, error) {
	var out struct {
		Services []*kiln.Service `json:"services"`
	}
	return out.Services, c.do(ctx, http.MethodGet, "/api/v1/services", nil, nil, &out)
}

// SetServiceVersion implements kiln.ServiceStore; only a rollout on the
// server sets what a service runs.
func (c *Client) SetServiceVersion(context.Context, string, kiln.VersionRef) error {
	return noRoute("setting a service's version (a rollout sets it: kiln rollout SERVICE --to IMAGE-N)")
}

// UpdateService implements kiln.ServiceStore for what `kiln service set`
// changes: the follow mode, the rollout policy and the rollout settings
// (PATCH …/policy, every one of them sent). Image, environment, replicas,
// front end and health do not change in place, on the server either.
func (c *Client) UpdateService(ctx context.Context, s *kiln.Service) error {
	in := map[string]any{"max_surge": s.MaxSurge, "batch_size": s.BatchSize, "min_healthy_percent": s.MinHealthyPercent,
		"bake_time_ns": s.BakeTime, "max_error_rate": s.MaxErrorRate}
	var remove []string
	if s.Follow != "" {
		in["follow"] = s.Follow
	}
	if w := s.Policy.Window; w != nil {
		in["window"] = w.String()
	} else {
		remove = append(remove, "window")
	}
	if l := s.Policy.Limit; l != nil {
		in["limit"] = l.String()
	} else {
		remove = append(remove, "limit")
	}
	if g := s.Policy.Gate; g != nil {
		in["gate"] = map[string]any{"prometheus": g.Prometheus, "query": g.Query, "max": g.Max, "for_ns": g.For}
	} else {
		remove = append(remove, "gate")
	}
	if s.MetricsListen != "" {
		in["metrics_listen"] = s.MetricsListen
	} else {
		remove = append(remove, "metrics_listen")
	}
	if len(remove) > 0 {
		in["remove"] = remove
	}
	return c.do(ctx, http.MethodPatch, servicePath(s.Name)+"/policy", nil, in, nil)
}

// The autopilot's pauses are kept by the server.
var _ kiln.PauseStore = (*Client)(nil)

func pausePath(kind kiln.PauseKind, name string) string {
	if kind == kiln.PauseEnvironment {
		return "/api/v1/environments/" + url.PathEscape(name) + "/pause"
	}
	return servicePath(name) + "/pause"
}

// Pause implements kiln.PauseStore; p is updated with the pause as
// recorded (the caller's token as its actor).
func (c *Client) Pause(ctx context.Context, p *kiln.Pause) error {
	if p == nil {
		return kiln.Errorf(kiln.EINVALID, "no pause given")
	}
	if err := p.Validate(); err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, pausePath(p.Kind, p.Name), nil, map[string]any{"reason": p.Reason}, p)
}

// Resume implements kiln.PauseStore.
func (c *Client) Resume(ctx context.Context, kind kiln.PauseKind, name string) error {
	return c.do(ctx, http.MethodDelete, pausePath(kind, name), nil, nil, nil)
}

// ListPauses implements kiln.PauseStore.
func (c *Client) ListPauses(ctx context.Context) ([]*kiln.Pause, error) {
	var out struct {
		Pauses []*kiln.Pause `json:"pauses"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/pauses", nil, nil, &out); err != nil {
		return nil, err
	}
	return out.Pauses, nil
}

// FindPause implements kiln.PauseStore from the list (the server keeps
// few pauses).
func (c *Client) FindPause(ctx context.Context, kind kiln.PauseKind, name string) (*kiln.Pause, error) {
	ps, err := c.ListPauses(ctx)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		if p.Kind == kind && p.Name == name {
			return p, nil
		}
	}
	return nil, kiln.Errorf(kiln.ENOTFOUND, "%s %s is not paused", kind, name)
}

// SetServiceFollowed implements kiln.ServiceStore; only kiln serve's
// follower records it.
func (c *Client) SetServiceFollowed(context.Context, string, kiln.VersionRef) error {
	return noRoute("recording a followed channel version (kiln serve does it)")
}

// SetServicePending implements kiln.ServiceStore; only kiln serve's
// autopilot records it.
func (c *Client) SetServicePending(context.Context, string, *kiln.PendingRollout) error {
	return noRoute("recording a pending rollout (kiln serve's autopilot does it)")
}

// DeleteService implements kiln.ServiceStore: the server deletes the
// service (one without instances) and stops its front end.
func (c *Client) DeleteService(ctx context.Context, name string) error {
	_, err := c.RemoveService(ctx, name, false)
	return err
}

// ListMembers implements kiln.ServiceStore.
func (c *Client) ListMembers(ctx context.Context, service string) ([]*kiln.Member, error) {
	v, err := c.service(ctx, service, 0)
	if err != nil {
		return nil, err
	}
	return v.Members, nil
}

// PutMember implements kiln.ServiceStore; members change only in rollouts.
func (c *Client) PutMember(context.Context, *kiln.Member) error {
	return noRoute("changing a service's instances (a rollout does it)")
}

// DeleteMember implements kiln.ServiceStore; members change only in rollouts.
func (c *Client) DeleteMember(context.Context, string, string) error {
	return noRoute("changing a service's instances (a rollout does it)")
}

// ReportProxy implements kiln.ServiceStore; front ends report to their
// own database.
func (c *Client) ReportProxy(context.Context, *kiln.ProxyStatus) error {
	return noRoute("front-end reports")
}

// ProxyStatus implements kiln.ServiceStore.
func (c *Client) ProxyStatus(ctx context.Context, service string) (*kiln.ProxyStatus, error) {
	v, err := c.service(ctx, service, 0)
	if err != nil {
		return nil, err
	}
	if v.FrontEnd == nil {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "the front end of %s has not reported", service)
	}
	return v.FrontEnd, nil
}

// CreateRollout implements kiln.RolloutStore; rollouts are started with
// StartRollout, which runs them on the server.
func (c *Client) CreateRollout(context.Context, *kiln.Rollout) error {
	return noRoute("recording rollouts (kiln rollout starts one on the server)")
}

// FindRollout implements kiln.RolloutStore.
func (c *Client) FindRollout(ctx context.Context, id int64) (*kiln.Rollout, error) {
	p, err := c.RolloutProgress(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	return p.Rollout, nil
}

// ActiveRollout implements kiln.RolloutStore.
func (c *Client) ActiveRollout(ctx context.Context, service string) (*kiln.Rollout, error) {
	v, err := c.service(ctx, service, 1)
	if err != nil {
		return nil, err
	}
	if len(v.Rollouts) == 0 || v.Rollouts[0].State.Done() {
		return nil, kiln.Errorf(kiln.ENOTFOUND, "service %s has no rollout in progress", service)
	}
	return v.Rollouts[0], nil
}

// ListRollouts implements kiln.RolloutStore.
func (c *Client) ListRollouts(ctx context.Context, service string, limit int) ([]*kiln.Rollout, error) {
	v, err := c.service(ctx, service, limit)
	if err != nil {
		return nil, err
	}
	return v.Rollouts, nil
}

// UpdateRollout implements kiln.RolloutStore; only the server's rollout
// changes its record.
func (c *Client) UpdateRollout(context.Context, *kiln.Rollout) error {
	return noRoute("changing rollouts")
}

// BreakGlass implements kiln.RolloutStore; break-glass access opens a
// shell in the instance, on its machine.
func (c *Client) BreakGlass(context.Context, *kiln.BreakGlass) (*kiln.Instance, error) {
	return nil, noRoute("break-glass access (kiln instance shell)")
}

// ListBreakGlass implements kiln.RolloutStore.
func (c *Client) ListBreakGlass(context.Context, string) ([]*kiln.BreakGlass, error) {
	return nil, noRoute("break-glass records")
}

// StartRollout implements kiln.RolloutStarter: the server records the
// rollout and runs it in the background; follow it with RolloutProgress.
func (c *Client) StartRollout(ctx context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
	in := map[string]any{}
	if !req.To.IsZero() {
		in["to"] = req.To.String()
	}
	if req.AllowUnready {
		in["allow_unready"] = true
	}
	if req.Resume {
		in["resume"] = true
	}
	r := &kiln.Rollout{}
	if err := c.do(ctx, http.MethodPost, servicePath(req.Service)+"/rollouts", nil, in, r); err != nil {
		return nil, err
	}
	return r, nil
}

// RolloutProgress implements kiln.RolloutStarter.
func (c *Client) RolloutProgress(ctx context.Context, id int64, after int) (*kiln.RolloutProgress, error) {
	p := &kiln.RolloutProgress{}
	q := url.Values{"after": {strconv.Itoa(after)}}
	if err := c.do(ctx, http.MethodGet, "/api/v1/rollouts/"+strconv.FormatInt(id, 10), q, nil, p); err != nil {
		return nil, err
	}
	return p, nil
}

type frontEnd struct {
	Running bool `json:"running"`
}

// StartFrontEnd implements kiln.ServiceHost: the front end runs on the
// server's machine.
func (c *Client) StartFrontEnd(ctx context.Context, service string) error {
	return c.do(ctx, http.MethodPost, servicePath(service)+"/front-end", nil, nil, &frontEnd{})
}

// StopFrontEnd implements kiln.ServiceHost.
func (c *Client) StopFrontEnd(ctx context.Context, service string) error {
	return c.do(ctx, http.MethodDelete, servicePath(service)+"/front-end", nil, nil, &frontEnd{})
}

// FrontEndRunning implements kiln.ServiceHost.
func (c *Client) FrontEndRunning(ctx context.Context, service string) (bool, error) {
	var fe frontEnd
	err := c.do(ctx, http.MethodGet, servicePath(service)+"/front-end", nil, nil, &fe)
	return fe.Running, err
}

// RemoveService implements kiln.ServiceHost.
func (c *Client) RemoveService(ctx context.Context, service string, destroyInstances bool) ([]string, error) {
	var out struct {
		Destroyed []string `json:"destroyed"`
	}
	q := url.Values{}
	if destroyInstances {
		q.Set("destroy_instances", "true")
	}
	err := c.do(ctx, http.MethodDelete, servicePath(service), q, nil, &out)
	return out.Destroyed, err
}

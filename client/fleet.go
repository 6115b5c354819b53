package client

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/fleet"
)

// Compile-time checks: the fleet commands run over the API too.
var (
	_ kiln.Inventory     = (*Client)(nil)
	_ kiln.Fleet         = (*Client)(nil)
	_ kiln.AdvisoryStore = (*Client)(nil)
)

// pageSize is the most the API's list operations return at once.
const pageSize = 10000

// noRoute is the refusal of an operation the API does not serve: it says
// what to run where instead.
func noRoute(what string) error {
	return kiln.Errorf(kiln.EINVALID, "the kiln API does not serve %s; run this command on the kiln server's machine (without --server)", what)
}

// CreateInstance implements kiln.Inventory by registering the one instance
// (all or none, its version must be known); an empty ID is assigned.
func (c *Client) CreateInstance(ctx context.Context, inst *kiln.Instance) error {
	return c.RegisterInstances(ctx, []*kiln.Instance{inst}, kiln.RegisterOptions{})
}

// FindInstance implements kiln.Inventory.
func (c *Client) FindInstance(ctx context.Context, idOrName string) (*kiln.Instance, error) {
	inst := &kiln.Instance{}
	return inst, c.do(ctx, http.MethodGet, "/api/v1/instances/"+url.PathEscape(idOrName), nil, nil, inst)
}

// ListInstances implements kiln.Inventory. A zero Limit lists all (in pages
// of 10000), as the store does.
func (c *Client) ListInstances(ctx context.Context, f kiln.InstanceFilter) ([]*kiln.Instance, int, error) {
	if f.Platform != "" {
		return nil, 0, noRoute("instance filters by platform")
	}
	q := url.Values{}
	if f.Image != "" {
		q.Set("image", f.Image)
	}
	if f.Version != nil {
		q.Set("image", f.Version.Image)
		q.Set("version", strconv.Itoa(f.Version.Number))
	}
	if f.Environment != "" {
		q.Set("env", f.Environment)
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		q.Set("state", strings.Join(states, ","))
	}
	var all []*kiln.Instance
	offset, want := f.Offset, f.Limit
	for {
		limit := pageSize
		if want > 0 && want-len(all) < limit {
			limit = want - len(all)
		}
		q.Set("limit", strconv.Itoa(limit))
		q.Set("offset", strconv.Itoa(offset))
		var out struct {
			Instances []*kiln.Instance `json:"instances"`
			Total     int              `json:"total"`
		}
		if err := c.do(ctx, http.MethodGet, "/api/v1/instances", q, nil, &out); err != nil {
			return nil, 0, err
		}
		all = append(all, out.Instances...)
		offset += len(out.Instances)
		if len(out.Instances) < limit || offset >= out.Total || (want > 0 && len(all) >= want) {
			return all, out.Total, nil
		}
	}
}

// SetInstanceState implements kiln.Inventory; state changes come from the
// platform that runs the instance or from check-ins, never over the API.
func (c *Client) SetInstanceState(context.Context, string, kiln.InstanceState, string) (*kiln.Instance, error) {
	return nil, noRoute("instance state changes")
}

// DeleteInstance implements kiln.Inventory.
func (c *Client) DeleteInstance(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/api/v1/instances/"+url.PathEscape(id), nil, nil, nil)
}

// RegisterInstances implements kiln.Fleet: all or none, in the server's
// one transaction. An error about one instance names opts.Where[i] when
// given, as the local store does.
func (c *Client) RegisterInstances(ctx context.Context, insts []*kiln.Instance, opts kiln.RegisterOptions) error {
	q := url.Values{}
	if opts.AllowUnknown {
		q.Set("allow_unknown", "true")
	}
	in := map[string]any{"instances": insts}
	var out struct {
		Instances []*kiln.Instance `json:"instances"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/instances", q, in, &out); err != nil {
		return whereField(err, opts.Where)
	}
	// The server assigned ids and defaults; the caller prints them.
	for i, inst := range out.Instances {
		if i < len(insts) {
			*insts[i] = *inst
		}
	}
	return nil
}

// whereField rewrites an error's field "instances[i]…" to where[i], the
// file and line the instance came from.
func whereField(err error, where []string) error {
	var ke *kiln.Error
	if !errors.As(err, &ke) || !strings.HasPrefix(ke.Field, "instances[") {
		return err
	}
	n, rest, ok := strings.Cut(strings.TrimPrefix(ke.Field, "instances["), "]")
	i, aerr := strconv.Atoi(n)
	if !ok || aerr != nil || i < 0 || i >= len(where) || where[i] == "" {
		return err
	}
	out := *ke
	out.Field = where[i] + rest
	return &out
}

// CheckIn implements kiln.Fleet: one request per check-in (the route an
// agent uses; it needs an agent token).
func (c *Client) CheckIn(ctx context.Context, cs []*kiln.Checkin) ([]*kiln.CheckinResult, error) {
	out := make([]*kiln.CheckinResult, 0, len(cs))
	for _, ci := range cs {
		res := &kiln.CheckinResult{}
		if err := c.do(ctx, http.MethodPost, fleet.CheckinPath, nil, ci, res); err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	return out, nil
}

// Usage implements kiln.Fleet: the server counts, as the store does.
func (c *Client) Usage(ctx context.Context, f kiln.UsageFilter) ([]*kiln.Usage, error) {
	q := url.Values{}
	if f.Image != "" {
		q.Set("image", f.Image)
	}
	if f.Environment != "" {
		q.Set("env", f.Environment)
	}
	var out struct {
		Usage []*kiln.Usage `json:"usage"`
	}
	return out.Usage, c.do(ctx, http.MethodGet, "/api/v1/fleet/usage", q, nil, &out)
}

// MarkLost implements kiln.Fleet; `kiln serve` marks lost instances
// itself every 10 minutes.
func (c *Client) MarkLost(context.Context, time.Time) (int, error) {
	return 0, noRoute("marking instances lost (kiln serve does it every 10 minutes)")
}

// Manifests implements kiln.Fleet, so exposure to a stored advisory is
// decided here as on the server's machine (with this CLI's --release).
func (c *Client) Manifests(ctx context.Context, sources []string) ([]*kiln.PackageManifest, error) {
	q := url.Values{}
	if len(sources) > 0 {
		q.Set("source", strings.Join(sources, ","))
	}
	var out struct {
		Manifests []*kiln.PackageManifest `json:"manifests"`
	}
	return out.Manifests, c.do(ctx, http.MethodGet, "/api/v1/fleet/manifests", q, nil, &out)
}

func policyPath(env string) string { return "/api/v1/fleet/policies/" + url.PathEscape(env) }

// SetAgePolicy implements kiln.Fleet (admin); p gets the server's
// UpdatedAt and UpdatedBy.
func (c *Client) SetAgePolicy(ctx context.Context, p *kiln.AgePolicy) error {
	if p == nil || p.Environment == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "environment", "an age policy needs an environment, e.g. --env prod")
	}
	return c.do(ctx, http.MethodPut, policyPath(p.Environment), nil, map[string]any{"max_age_seconds": int64(p.MaxAge)}, p)
}

// AgePolicies implements kiln.Fleet.
func (c *Client) AgePolicies(ctx context.Context) ([]*kiln.AgePolicy, error) {
	var out struct {
		Policies []*kiln.AgePolicy `json:"policies"`
	}
	return out.Policies, c.do(ctx, http.MethodGet, "/api/v1/fleet/policies", nil, nil, &out)
}

// DeleteAgePolicy implements kiln.Fleet (admin).
func (c *Client) DeleteAgePolicy(ctx context.Context, env string) error {
	if env == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "environment", "no environment given; name the one whose age policy to remove, e.g. --env prod")
	}
	return c.do(ctx, http.MethodDelete, policyPath(env), nil, nil, nil)
}

// PutAdvisories implements kiln.AdvisoryStore, 1000 advisories per request
// (the API's limit); each request is its own transaction on the server.
func (c *Client) PutAdvisories(ctx context.Context, advs []*kiln.Advisory) (int, error) {
	created := 0
	for chunk := range slices.Chunk(advs, 1000) {
		var out struct {
			Created int `json:"created"`
		}
		if err := c.do(ctx, http.MethodPost, "/api/v1/advisories", nil, map[string]any{"advisories": chunk}, &out); err != nil {
			return created, err
		}
		created += out.Created
	}
	return created, nil
}

// FindAdvisory implements kiln.AdvisoryStore.
func (c *Client) FindAdvisory(ctx context.Context, id string) (*kiln.Advisory, error) {
	a := &kiln.Advisory{}
	return a, c.do(ctx, http.MethodGet, "/api/v1/advisories/"+url.PathEscape(id), nil, nil, a)
}

// ListAdvisories implements kiln.AdvisoryStore; a zero Limit lists all.
func (c *Client) ListAdvisories(ctx context.Context, f kiln.AdvisoryFilter) ([]*kiln.Advisory, int, error) {
	q := url.Values{}
	if f.Source != "" {
		q.Set("source", string(f.Source))
	}
	if f.FixedIn {
		q.Set("fixed_in", "true")
	}
	if f.Package != "" {
		q.Set("package", f.Package)
	}
	limit := f.Limit
	if limit == 0 {
		limit = pageSize
	}
	q.Set("limit", strconv.Itoa(limit))
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out struct {
		Advisories []*kiln.Advisory `json:"advisories"`
		Total      int              `json:"total"`
	}
	return out.Advisories, out.Total, c.do(ctx, http.MethodGet, "/api/v1/advisories", q, nil, &out)
}

// DeleteAdvisory implements kiln.AdvisoryStore (operator).
func (c *Client) DeleteAdvisory(ctx context.Context, id string) error {
	if id == "" {
		return kiln.FieldErrorf(kiln.EINVALID, "id", "no advisory id given; see `kiln advisory list`")
	}
	return c.do(ctx, http.MethodDelete, "/api/v1/advisories/"+url.PathEscape(id), nil, nil, nil)
}

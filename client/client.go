// Package client implements the domain's stores (kiln.Registry, Inventory,
// Fleet, AdvisoryStore, RunStore, ChannelStore, WebhookStore) over kiln's
// HTTP API, so the CLI can work against a `kiln serve` (--server) with the
// same commands it runs on a local database. The server's own work
// (claiming and running runs, sending webhooks, marking instances lost,
// attaching build output) is not offered through the API: those methods
// refuse with a message saying where to run them. It knows HTTP and the
// API's JSON; it must not know SQL or anything of the server's internals,
// and it never logs the token.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	kiln "github.com/kiln-project/kiln"
)

// Compile-time check that *Client is a kiln.Registry.
var _ kiln.Registry = (*Client)(nil)

// Client talks to one kiln server with one token.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Option changes how New builds a client.
type Option func(*options)

type options struct{ allowHTTP bool }

// AllowHTTP lets the client send its token over plain http:// to a server
// that is not loopback, where it crosses the network in clear text. Without
// it New refuses such a URL.
func AllowHTTP(allow bool) Option { return func(o *options) { o.allowHTTP = allow } }

// New returns a client for the server at rawURL (https://kiln.example:8443)
// sending token. httpClient may be nil. A plain http:// URL is refused
// unless it names loopback or AllowHTTP(true) is given.
func New(rawURL, token string, httpClient *http.Client, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	u, err := url.Parse(strings.TrimRight(rawURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--server", "%q is not a server URL; write https://HOST:PORT", rawURL)
	}
	if err := kiln.CheckCleartext(u, o.allowHTTP, "--server", "--allow-http (env KILN_ALLOW_HTTP=1)"); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "--server", "no token for %s: set KILN_TOKEN or write it to %s (mode 0600)", u.Redacted(), DefaultCredentialsFile())
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 2 * time.Minute}
	}
	return &Client{base: u, token: token, http: httpClient}, nil
}

// DefaultCredentialsFile is $XDG_CONFIG_HOME/kiln/token (~/.config/kiln/token).
func DefaultCredentialsFile() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return filepath.Join(".kiln", "token")
	}
	return filepath.Join(dir, "kiln", "token")
}

// Token returns the token to use: KILN_TOKEN from env when set, else the
// first line of the credentials file, which must not be readable or
// writable by group or others. "" with no error when neither exists.
func Token(env func(string) string, file string) (string, error) {
	if t := strings.TrimSpace(env("KILN_TOKEN")); t != "" {
		return t, nil
	}
	fi, err := os.Stat(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", kiln.Errorf(kiln.EINVALID, "cannot read credentials file %s: %v", file, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", kiln.Errorf(kiln.EINVALID, "credentials file %s has mode %04o, so others may read the token; run `chmod 600 %s` (and consider revoking the token)", file, fi.Mode().Perm(), file)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", kiln.Errorf(kiln.EINVALID, "cannot read credentials file %s: %v", file, err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line), nil
}

// errorBody is the API's error shape (api.ErrorBody).
type errorBody struct {
	Status  int    `json:"status"`
	Code    string `json:"code"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// do sends a request and decodes a 2xx answer into out; any other answer
// becomes the *kiln.Error the server described, with its code, field and
// message, so the CLI prints and exits as it would locally.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := *c.base
	u.Path += path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err,
			Message: fmt.Sprintf("cannot reach kiln server %s: %v; check --server and that kiln serve runs", c.base.Redacted(), unwrapURLError(err))}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &kiln.Error{Code: kiln.EUNAVAILABLE, Err: err, Message: fmt.Sprintf("reading the answer of %s: %v", c.base.Redacted(), err)}
	}
	if resp.StatusCode/100 != 2 {
		var eb errorBody
		if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
			return kiln.Errorf(kiln.EUNAVAILABLE, "kiln server %s answered %s to %s %s; is --server a kiln server?", c.base.Redacted(), resp.Status, method, path)
		}
		return &kiln.Error{Code: eb.Code, Field: strings.TrimPrefix(strings.TrimPrefix(eb.Field, "body."), "query."), Message: eb.Message}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode the answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func versionPath(ref kiln.VersionRef) string {
	return "/api/v1/images/" + url.PathEscape(ref.Image) + "/versions/" + strconv.Itoa(ref.Number)
}

// CreateImage implements kiln.Registry.
func (c *Client) CreateImage(ctx context.Context, img *kiln.Image) error {
	in := map[string]string{"name": img.Name}
	if img.Description != "" {
		in["description"] = img.Description
	}
	return c.do(ctx, http.MethodPost, "/api/v1/images", nil, in, img)
}

// FindImage implements kiln.Registry.
func (c *Client) FindImage(ctx context.Context, name string) (*kiln.Image, error) {
	img := &kiln.Image{}
	return img, c.do(ctx, http.MethodGet, "/api/v1/images/"+url.PathEscape(name), nil, nil, img)
}

// ListImages implements kiln.Registry.
func (c *Client) ListImages(ctx context.Context) ([]*kiln.Image, error) {
	var out struct {
		Images []*kiln.Image `json:"images"`
	}
	return out.Images, c.do(ctx, http.MethodGet, "/api/v1/images", nil, nil, &out)
}

// CreateVersion implements kiln.Registry. A version to be sealed (signed)
// is refused: the signing key stays with the server's builds.
func (c *Client) CreateVersion(ctx context.Context, nv *kiln.NewVersion) (*kiln.Version, error) {
	in, err := versionBody(nv)
	if err != nil {
		return nil, err
	}
	v := &kiln.Version{}
	return v, c.do(ctx, http.MethodPost, "/api/v1/images/"+url.PathEscape(nv.Image)+"/versions", nil, in, v)
}

// versionBody is nv as create-version and import-versions take it.
func versionBody(nv *kiln.NewVersion) (map[string]any, error) {
	if nv.Seal != nil {
		return nil, kiln.Errorf(kiln.EINVALID, "signed versions are recorded where the signing key is; run this build on the kiln server, not through --server")
	}
	p := nv.Provenance
	in := map[string]any{}
	set := func(k string, v any, ok bool) {
		if ok {
			in[k] = v
		}
	}
	set("semver", nv.SemVer, nv.SemVer != "")
	set("method", string(p.Method), p.Method != "")
	set("parent", refString(p.Parent), p.Parent != nil)
	set("base", refString(p.Base), p.Base != nil)
	set("sources", p.Sources, len(p.Sources) > 0)
	set("packages", p.Packages, len(p.Packages) > 0)
	set("artifact", p.Artifact, p.Artifact != nil)
	set("tags", nv.Tags, len(nv.Tags) > 0)
	set("built_by", p.BuiltBy, p.BuiltBy != "")
	set("started_at", p.StartedAt, !p.StartedAt.IsZero())
	set("finished_at", p.FinishedAt, !p.FinishedAt.IsZero())
	return in, nil
}

func refString(r *kiln.VersionRef) string {
	if r == nil {
		return ""
	}
	return r.String()
}

// FindVersion implements kiln.Registry.
func (c *Client) FindVersion(ctx context.Context, ref kiln.VersionRef) (*kiln.Version, error) {
	v := &kiln.Version{}
	return v, c.do(ctx, http.MethodGet, versionPath(ref), nil, nil, v)
}

// ListVersions implements kiln.Registry.
func (c *Client) ListVersions(ctx context.Context, f kiln.VersionFilter) ([]*kiln.Version, int, error) {
	if f.Image == "" {
		return nil, 0, kiln.FieldErrorf(kiln.EINVALID, "image", "listing versions through --server needs an image name")
	}
	q := url.Values{}
	for _, s := range f.Status {
		q.Add("status", string(s))
	}
	if f.MinStatus != "" {
		q.Set("min_status", string(f.MinStatus))
	}
	for k, v := range f.Tags {
		q.Add("tag", k+"="+v)
	}
	// The server's default page is 100; 0 means all here as in the store.
	limit := f.Limit
	if limit == 0 {
		limit = 10000
	}
	q.Set("limit", strconv.Itoa(limit))
	if f.Offset > 0 {
		q.Set("offset", strconv.Itoa(f.Offset))
	}
	var out struct {
		Versions []*kiln.Version `json:"versions"`
		Total    int             `json:"total"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/images/"+url.PathEscape(f.Image)+"/versions", q, nil, &out)
	return out.Versions, out.Total, err
}

// LatestVersion implements kiln.Registry.
func (c *Client) LatestVersion(ctx context.Context, image string, min kiln.Status) (*kiln.Version, error) {
	q := url.Values{}
	if min == "" {
		min = kiln.StatusCandidate
	}
	q.Set("status", string(min))
	v := &kiln.Version{}
	return v, c.do(ctx, http.MethodGet, "/api/v1/images/"+url.PathEscape(image)+"/versions/latest", q, nil, v)
}

// SetStatus implements kiln.Registry.
func (c *Client) SetStatus(ctx context.Context, ref kiln.VersionRef, to kiln.Status, reason string) (*kiln.Version, error) {
	in := map[string]string{"status": string(to)}
	if reason != "" {
		in["reason"] = reason
	}
	v := &kiln.Version{}
	return v, c.do(ctx, http.MethodPost, versionPath(ref)+"/status", nil, in, v)
}

// UpdateTags implements kiln.Registry.
func (c *Client) UpdateTags(ctx context.Context, ref kiln.VersionRef, upd kiln.TagUpdate) (*kiln.Version, error) {
	in := map[string]any{}
	if len(upd.Set) > 0 {
		in["set"] = upd.Set
	}
	if len(upd.Remove) > 0 {
		in["remove"] = upd.Remove
	}
	if upd.Reason != "" {
		in["reason"] = upd.Reason
	}
	v := &kiln.Version{}
	return v, c.do(ctx, http.MethodPatch, versionPath(ref)+"/tags", nil, in, v)
}

// History implements kiln.Registry.
func (c *Client) History(ctx context.Context, ref kiln.VersionRef) ([]*kiln.HistoryEntry, error) {
	var out struct {
		History []*kiln.HistoryEntry `json:"history"`
	}
	return out.History, c.do(ctx, http.MethodGet, versionPath(ref)+"/history", nil, nil, &out)
}

// Lineage implements kiln.Registry.
func (c *Client) Lineage(ctx context.Context) ([]*kiln.Lineage, error) {
	var out struct {
		Lineage []*kiln.Lineage `json:"lineage"`
	}
	return out.Lineage, c.do(ctx, http.MethodGet, "/api/v1/lineage", nil, nil, &out)
}

// AddAttachment implements kiln.Registry. It refuses: build logs, test
// reports and signed provenance are attached by the builds and tests that
// make them, on the server, so the API offers no upload.
func (c *Client) AddAttachment(_ context.Context, ref kiln.VersionRef, a *kiln.Attachment) error {
	return kiln.Errorf(kiln.EINVALID, "attachments of %s are written by the build or test that makes them, on the kiln server; run that there or without --server (the API only reads attachments)", ref)
}

// Attachment implements kiln.Registry.
func (c *Client) Attachment(ctx context.Context, ref kiln.VersionRef, name string) (*kiln.Attachment, error) {
	if name == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "name", "no attachment name given; see `kiln version attachments %s`", ref)
	}
	var out struct {
		kiln.Attachment
		Data []byte `json:"data"`
	}
	if err := c.do(ctx, http.MethodGet, versionPath(ref)+"/attachments/"+url.PathEscape(name), nil, nil, &out); err != nil {
		return nil, err
	}
	a := out.Attachment
	a.Data = out.Data
	return &a, nil
}

// ListAttachments implements kiln.Registry: names, media types and sizes,
// without content.
func (c *Client) ListAttachments(ctx context.Context, ref kiln.VersionRef) ([]*kiln.Attachment, error) {
	var out struct {
		Attachments []*kiln.Attachment `json:"attachments"`
	}
	return out.Attachments, c.do(ctx, http.MethodGet, versionPath(ref)+"/attachments", nil, nil, &out)
}

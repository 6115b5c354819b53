package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/kiln-project/kiln"
)

// Compile-time checks: the client records batches and package manifests
// through the server, as the store does locally.
var (
	_ kiln.VersionImporter = (*Client)(nil)
	_ kiln.PackageRecorder = (*Client)(nil)
)

// CreateVersions implements kiln.VersionImporter with one request
// (import-versions), which the server records in one transaction: all or
// nothing.
func (c *Client) CreateVersions(ctx context.Context, nvs []*kiln.NewVersion) ([]*kiln.Version, error) {
	items := make([]map[string]any, len(nvs))
	for i, nv := range nvs {
		if nv == nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("versions[%d]", i), "no version given")
		}
		in, err := versionBody(nv)
		if err != nil {
			return nil, err
		}
		in["image"] = nv.Image
		items[i] = in
	}
	var out struct {
		Versions []*kiln.Version `json:"versions"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/versions/import", nil, map[string]any{"versions": items}, &out); err != nil {
		return nil, err
	}
	if len(out.Versions) != len(nvs) {
		return nil, fmt.Errorf("import versions: the server answered %d versions for %d sent", len(out.Versions), len(nvs))
	}
	return out.Versions, nil
}

// SetPackages implements kiln.PackageRecorder (set-version-packages).
func (c *Client) SetPackages(ctx context.Context, ref kiln.VersionRef, pkgs []kiln.Package) (*kiln.Version, error) {
	v := &kiln.Version{}
	path := "/api/v1/images/" + url.PathEscape(ref.Image) + fmt.Sprintf("/versions/%d/packages", ref.Number)
	return v, c.do(ctx, http.MethodPut, path, nil, map[string]any{"packages": pkgs}, v)
}

package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type versionOut struct{ Body *kiln.Version }

type versionsOut struct {
	Body struct {
		Versions []*kiln.Version `json:"versions"`
		Total    int             `json:"total" doc:"matches ignoring limit and offset"`
	}
}

type versionPath struct {
	Image  string `path:"image" maxLength:"63" example:"appserver"`
	Number int    `path:"number" minimum:"1" example:"3"`
}

func (p versionPath) ref() kiln.VersionRef { return kiln.VersionRef{Image: p.Image, Number: p.Number} }

// VersionBody is a version to record: create-version's body, and each
// item of import-versions (exported so that the OpenAPI schema of the
// item embeds its fields).
type VersionBody struct {
	SemVer     string            `json:"semver,omitempty" doc:"MAJOR.MINOR.PATCH; kiln appends the UTC build stamp" example:"1.0.4"`
	Method     string            `json:"method,omitempty" enum:"fresh,reheat,external" doc:"default fresh; external for an image another tool built (a Packer AMI)"`
	Parent     string            `json:"parent,omitempty" doc:"for reheat: IMAGE-N of the same image" example:"appserver-2"`
	Base       string            `json:"base,omitempty" doc:"IMAGE-N of another image line this was built on" example:"basic-linux-4"`
	Sources    []kiln.Source     `json:"sources,omitempty" maxItems:"1000"`
	Packages   []kiln.Package    `json:"packages,omitempty" maxItems:"20000"`
	Artifact   *kiln.Artifact    `json:"artifact,omitempty" doc:"the root filesystem artifact"`
	Artifacts  []kiln.Artifact   `json:"artifacts,omitempty" maxItems:"8" doc:"disk images built from the root filesystem artifact, one per format (qcow2, raw), as a build with formats = [...] records them"`
	Tags       map[string]string `json:"tags,omitempty"`
	BuiltBy    string            `json:"built_by,omitempty" maxLength:"256"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
}

type versionCreateIn struct {
	Image string `path:"image" maxLength:"63" example:"appserver"`
	Body  VersionBody
}

// versionImportItem is one version of an import-versions batch.
type versionImportItem struct {
	Image string `json:"image" maxLength:"63" example:"web" doc:"the image line it is a version of; it must exist"`
	VersionBody
}

type versionImportIn struct {
	Body struct {
		Versions []versionImportItem `json:"versions" minItems:"1" maxItems:"1000" doc:"recorded in this order, numbered per image"`
	}
}

type versionImportOut struct {
	Body struct {
		Versions []*kiln.Version `json:"versions" doc:"the recorded versions, in the order given"`
	}
}

type packagesIn struct {
	Image  string `path:"image" maxLength:"63" example:"web"`
	Number int    `path:"number" minimum:"1" example:"3"`
	Body   struct {
		Packages []kiln.Package `json:"packages" minItems:"1" maxItems:"20000" doc:"every installed package, as dpkg-query -W reports them"`
	}
}

// newVersion turns a version body into a new version of image recorded by
// the caller. Fields in errors start with field ("body." or
// "body.versions[2].").
func newVersion(ctx context.Context, image string, b *VersionBody, field string) (*kiln.NewVersion, error) {
	nv := &kiln.NewVersion{Image: image, SemVer: b.SemVer, Tags: b.Tags}
	nv.Provenance = kiln.Provenance{
		Method: kiln.Method(b.Method), Sources: b.Sources, Packages: b.Packages,
		Artifact: b.Artifact, Artifacts: b.Artifacts, BuiltBy: b.BuiltBy,
	}
	if b.StartedAt != nil {
		nv.Provenance.StartedAt = *b.StartedAt
	}
	if b.FinishedAt != nil {
		nv.Provenance.FinishedAt = *b.FinishedAt
	}
	if nv.Provenance.BuiltBy == "" {
		nv.Provenance.BuiltBy = kiln.ActorFrom(ctx)
	}
	// kiln did not build it: the provenance is the caller's claim,
	// and the signed statement says who recorded it.
	nv.Provenance.RecordedBy = kiln.ActorFrom(ctx)
	if b.Parent != "" {
		r, err := kiln.ParseVersionRef(field+"parent", b.Parent)
		if err != nil {
			return nil, err
		}
		nv.Provenance.Parent = &r
	}
	if b.Base != "" {
		r, err := kiln.ParseVersionRef(field+"base", b.Base)
		if err != nil {
			return nil, err
		}
		nv.Provenance.Base = &r
	}
	if err := nv.Validate(); err != nil {
		var ke *kiln.Error
		if errors.As(err, &ke) {
			cp := *ke
			if ke.Field != "" || field != "body." {
				cp.Field = strings.TrimSuffix(field+ke.Field, ".")
			}
			return nil, &cp
		}
		return nil, err
	}
	return nv, nil
}

type versionListIn struct {
	Image     string   `path:"image" maxLength:"63"`
	Status    []string `query:"status" doc:"keep versions with any of these statuses (comma-separated)"`
	MinStatus string   `query:"min_status" enum:"candidate,tested,ready" doc:"keep versions at least this far along"`
	Tag       []string `query:"tag,explode" doc:"KEY=VALUE; repeat for several, all must match"`
	Limit     int      `query:"limit" minimum:"0" maximum:"10000" default:"100"`
	Offset    int      `query:"offset" minimum:"0"`
}

type versionLatestIn struct {
	Image  string `path:"image" maxLength:"63"`
	Status string `query:"status" enum:"candidate,tested,ready" default:"ready" doc:"minimum status"`
}

type statusIn struct {
	Image  string `path:"image" maxLength:"63"`
	Number int    `path:"number" minimum:"1"`
	Body   struct {
		Status string `json:"status" enum:"candidate,tested,ready,failed,deprecated,revoked"`
		Reason string `json:"reason,omitempty" maxLength:"1024"`
	}
}

type tagsIn struct {
	Image  string `path:"image" maxLength:"63"`
	Number int    `path:"number" minimum:"1"`
	Body   struct {
		Set    map[string]string `json:"set,omitempty"`
		Remove []string          `json:"remove,omitempty" maxItems:"50"`
		Reason string            `json:"reason,omitempty" maxLength:"1024"`
	}
}

type historyOut struct {
	Body struct {
		History []*kiln.HistoryEntry `json:"history"`
	}
}

type lineageOut struct {
	Body struct {
		Lineage []*kiln.Lineage `json:"lineage"`
	}
}

func (s *Server) registerVersions() {
	reg := func() kiln.Registry { return s.cfg.Registry }

	register(s, RoleBuilder, huma.Operation{
		OperationID: "create-version", Method: http.MethodPost, Path: "/api/v1/images/{image}/versions",
		Summary: "Record a new version (status candidate) with its provenance", Tags: []string{"versions"},
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *versionCreateIn) (*versionOut, error) {
		nv, err := newVersion(ctx, in.Image, &in.Body, "body.")
		if err != nil {
			return nil, err
		}
		v, err := reg().CreateVersion(ctx, nv)
		if err != nil {
			return nil, bodyField(err, "")
		}
		return &versionOut{Body: v}, nil
	})

	register(s, RoleBuilder, huma.Operation{
		OperationID: "import-versions", Method: http.MethodPost, Path: "/api/v1/versions/import",
		Summary: "Record several versions (status candidate) in one transaction: all of them or none",
		Description: "What `kiln version import packer-manifest --server` sends: the builds of a Packer manifest as versions of method external. " +
			"Every version is checked and recorded in one transaction; if any is refused (an unknown image, a bad field, a conflict), nothing is recorded " +
			"and the error's field names it (body.versions[2].artifact.ref).",
		Tags: []string{"versions"}, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *versionImportIn) (*versionImportOut, error) {
		imp := s.cfg.Importer
		if imp == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this server's registry cannot record versions all or nothing; record them one at a time (create-version)")
		}
		nvs := make([]*kiln.NewVersion, len(in.Body.Versions))
		for i := range in.Body.Versions {
			item := &in.Body.Versions[i]
			field := fmt.Sprintf("body.versions[%d].", i)
			if err := kiln.ValidateImageName(item.Image); err != nil {
				return nil, kiln.FieldErrorf(kiln.EINVALID, field+"image", "%s", kiln.ErrorMessage(err))
			}
			nv, err := newVersion(ctx, item.Image, &item.VersionBody, field)
			if err != nil {
				return nil, err
			}
			nvs[i] = nv
		}
		vs, err := imp.CreateVersions(ctx, nvs)
		if err != nil {
			return nil, bodyField(err, "")
		}
		out := &versionImportOut{}
		out.Body.Versions = vs
		return out, nil
	})

	register(s, RoleBuilder, huma.Operation{
		OperationID: "set-version-packages", Method: http.MethodPut, Path: "/api/v1/images/{image}/versions/{number}/packages",
		Summary: "Give an external version its package manifest, once",
		Description: "For a version of method external (imported from Packer), which kiln did not build and so could not read: its installed packages, " +
			"so that exposure and scans see it. Refused (immutable) for a version kiln built and for an external version that has a manifest. Audited, " +
			"and kept in the version's history. External versions are not signed: the manifest is the caller's word, as the rest of the record is.",
		Tags: []string{"versions"},
	}, func(ctx context.Context, in *packagesIn) (*versionOut, error) {
		pr := s.cfg.Packages
		if pr == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this server's registry cannot record package manifests")
		}
		v, err := pr.SetPackages(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number}, in.Body.Packages)
		if err != nil {
			return nil, bodyField(err, "")
		}
		return &versionOut{Body: v}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "list-versions", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions",
		Summary: "List versions of an image, newest first, filtered by status and tags", Tags: []string{"versions"},
	}, func(ctx context.Context, in *versionListIn) (*versionsOut, error) {
		f := kiln.VersionFilter{Image: in.Image, Limit: in.Limit, Offset: in.Offset, Tags: kiln.Tags{}}
		for _, st := range in.Status {
			p, err := kiln.ParseStatus("query.status", st)
			if err != nil {
				return nil, err
			}
			f.Status = append(f.Status, p)
		}
		f.MinStatus = kiln.Status(in.MinStatus)
		for _, t := range in.Tag {
			k, v, ok := strings.Cut(t, "=")
			if !ok {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "query.tag", "tag filter %q has no '='; write KEY=VALUE", t)
			}
			f.Tags[k] = v
		}
		vs, total, err := reg().ListVersions(ctx, f)
		if err != nil {
			return nil, err
		}
		out := &versionsOut{}
		out.Body.Versions, out.Body.Total = nonNil(vs), total
		return out, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "latest-version", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/latest",
		Summary: "The newest version with at least the given status (default ready)", Tags: []string{"versions"},
	}, func(ctx context.Context, in *versionLatestIn) (*versionOut, error) {
		v, err := reg().LatestVersion(ctx, in.Image, kiln.Status(in.Status))
		if err != nil {
			return nil, err
		}
		return &versionOut{Body: v}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "get-version", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}",
		Summary: "One version with its provenance and packages", Tags: []string{"versions"},
	}, func(ctx context.Context, in *versionPath) (*versionOut, error) {
		v, err := reg().FindVersion(ctx, in.ref())
		if err != nil {
			return nil, err
		}
		return &versionOut{Body: v}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "version-history", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/history",
		Summary: "Every status and tag change of a version", Tags: []string{"versions"},
	}, func(ctx context.Context, in *versionPath) (*historyOut, error) {
		h, err := reg().History(ctx, in.ref())
		if err != nil {
			return nil, err
		}
		out := &historyOut{}
		out.Body.History = nonNil(h)
		return out, nil
	})

	register(s, RoleOperator, huma.Operation{
		OperationID: "set-version-status", Method: http.MethodPost, Path: "/api/v1/images/{image}/versions/{number}/status",
		Summary: "Move a version along its lifecycle", Tags: []string{"versions"},
	}, func(ctx context.Context, in *statusIn) (*versionOut, error) {
		v, err := reg().SetStatus(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number}, kiln.Status(in.Body.Status), in.Body.Reason)
		if err != nil {
			return nil, bodyField(err, "")
		}
		return &versionOut{Body: v}, nil
	})

	register(s, RoleBuilder, huma.Operation{
		OperationID: "update-version-tags", Method: http.MethodPatch, Path: "/api/v1/images/{image}/versions/{number}/tags",
		Summary: "Set or remove free-form tags", Tags: []string{"versions"},
	}, func(ctx context.Context, in *tagsIn) (*versionOut, error) {
		for k, v := range in.Body.Set {
			if err := kiln.ValidateTag("body.set", k, v); err != nil {
				return nil, err
			}
		}
		v, err := reg().UpdateTags(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number}, kiln.TagUpdate{Set: in.Body.Set, Remove: in.Body.Remove, Reason: in.Body.Reason})
		if err != nil {
			return nil, bodyField(err, "")
		}
		return &versionOut{Body: v}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "lineage", Method: http.MethodGet, Path: "/api/v1/lineage",
		Summary: "Which image lines are built on which, and which are out of date", Tags: []string{"versions"},
	}, func(ctx context.Context, _ *struct{}) (*lineageOut, error) {
		ls, err := reg().Lineage(ctx)
		if err != nil {
			return nil, err
		}
		out := &lineageOut{}
		out.Body.Lineage = nonNil(ls)
		return out, nil
	})
}

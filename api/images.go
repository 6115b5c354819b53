package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type imageOut struct{ Body *kiln.Image }

type imagesOut struct {
	Body struct {
		Images []*kiln.Image `json:"images"`
	}
}

type imageCreateIn struct {
	Body struct {
		Name        string `json:"name" maxLength:"63" doc:"lowercase letters, digits and dashes, starting with a letter" example:"appserver"`
		Description string `json:"description,omitempty" maxLength:"1024"`
	}
}

type imagePath struct {
	Image string `path:"image" maxLength:"63" doc:"image line name" example:"appserver"`
}

func (s *Server) registerImages() {
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-images", Method: http.MethodGet, Path: "/api/v1/images",
		Summary: "List image lines", Tags: []string{"images"},
	}, func(ctx context.Context, _ *struct{}) (*imagesOut, error) {
		imgs, err := s.cfg.Registry.ListImages(ctx)
		if err != nil {
			return nil, err
		}
		out := &imagesOut{}
		out.Body.Images = nonNil(imgs)
		return out, nil
	})

	register(s, RoleBuilder, huma.Operation{
		OperationID: "create-image", Method: http.MethodPost, Path: "/api/v1/images",
		Summary: "Create an image line", Tags: []string{"images"}, DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *imageCreateIn) (*imageOut, error) {
		img := &kiln.Image{Name: in.Body.Name, Description: in.Body.Description}
		if err := kiln.ValidateImageName(img.Name); err != nil {
			return nil, bodyField(err, "body.name")
		}
		if err := s.cfg.Registry.CreateImage(ctx, img); err != nil {
			return nil, bodyField(err, "body.name")
		}
		return &imageOut{Body: img}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "get-image", Method: http.MethodGet, Path: "/api/v1/images/{image}",
		Summary: "Show one image line", Tags: []string{"images"},
	}, func(ctx context.Context, in *imagePath) (*imageOut, error) {
		img, err := s.cfg.Registry.FindImage(ctx, in.Image)
		if err != nil {
			return nil, err
		}
		return &imageOut{Body: img}, nil
	})
}

// nonNil turns a nil slice into an empty one so JSON shows [] not null.
func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}

// bodyField rewrites a domain error's field into the API's location syntax
// ("semver" → "body.semver"), keeping code and message.
func bodyField(err error, field string) error {
	var ke *kiln.Error
	if errors.As(err, &ke) && (ke.Field != "" || field != "") {
		cp := *ke
		switch {
		case ke.Field == "":
			cp.Field = field
		case ke.Field[0] != '-' && !hasPrefix(ke.Field, "body.") && !hasPrefix(ke.Field, "query.") && !hasPrefix(ke.Field, "path."):
			cp.Field = "body." + ke.Field
		}
		return &cp
	}
	return err
}

func hasPrefix(s, p string) bool { return len(s) >= len(p) && s[:len(p)] == p }

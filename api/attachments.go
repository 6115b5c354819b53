package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type attachmentsOut struct {
	Body struct {
		Attachments []*kiln.Attachment `json:"attachments"`
	}
}

type attachmentPath struct {
	Image  string `path:"image" maxLength:"63" example:"appserver"`
	Number int    `path:"number" minimum:"1" example:"3"`
	Name   string `path:"name" maxLength:"128" example:"build.log"`
}

type attachmentOut struct {
	Body struct {
		Name      string    `json:"name"`
		MediaType string    `json:"media_type"`
		Size      int64     `json:"size"`
		CreatedAt time.Time `json:"created_at"`
		Data      []byte    `json:"data" doc:"the content, base64"`
	}
}

// registerAttachments adds the read side of the documents kept with a
// version (build log, test report, signed provenance). They are written
// by the builds and tests that make them, on the server, so the API
// offers no upload.
func (s *Server) registerAttachments() {
	reg := s.cfg.Registry
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-attachments", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/attachments",
		Summary: "A version's attachments by name, without their content", Tags: []string{"versions"},
	}, func(ctx context.Context, in *versionPath) (*attachmentsOut, error) {
		as, err := reg.ListAttachments(ctx, in.ref())
		if err != nil {
			return nil, err
		}
		out := &attachmentsOut{}
		out.Body.Attachments = nonNil(as)
		return out, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "get-attachment", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/attachments/{name}",
		Summary: "One attachment with its content (base64 in data)", Tags: []string{"versions"},
	}, func(ctx context.Context, in *attachmentPath) (*attachmentOut, error) {
		a, err := reg.Attachment(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number}, in.Name)
		if err != nil {
			return nil, err
		}
		out := &attachmentOut{}
		b := &out.Body
		b.Name, b.MediaType, b.Size, b.CreatedAt, b.Data = a.Name, a.MediaType, a.Size, a.CreatedAt, a.Data
		if out.Body.Data == nil {
			out.Body.Data = []byte{}
		}
		return out, nil
	})
}

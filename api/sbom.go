package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/sbom"
	"github.com/kiln-project/kiln/sign"
)

// SBOMAttachments are the attachments a version's SBOMs are kept as, by
// the format the API serves them in (format=…): the dashboard links the
// ones a version has.
var SBOMAttachments = map[string]string{
	string(sbom.FormatSPDX):      sign.SBOMAttachment(sign.PredicateSPDX),
	string(sbom.FormatCycloneDX): sign.SBOMAttachment(sign.PredicateCycloneDX),
}

type sbomIn struct {
	Image    string `path:"image" maxLength:"63" example:"appserver"`
	Number   int    `path:"number" minimum:"1" example:"3"`
	Format   string `query:"format" enum:"spdx,cyclonedx" default:"spdx" doc:"spdx (SPDX 2.3 JSON) or cyclonedx (CycloneDX 1.6 JSON)"`
	Envelope bool   `query:"envelope" doc:"the signed DSSE envelope (an in-toto statement) instead of the SBOM document"`
}

// registerSBOM serves the SBOM kept with a version, verified against the
// server's signing key. Builds (and kiln version sbom --generate on the
// server) write it; the API only reads.
func (s *Server) registerSBOM() {
	reg := s.cfg.Registry
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-version-sbom", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/sbom",
		Summary:     "A version's SBOM (SPDX 2.3 or CycloneDX 1.6 JSON), verified against kiln's signing key",
		Tags:        []string{"versions"},
		Description: "The document is the predicate of a signed in-toto statement kept as the attachment sbom.spdx.dsse.json or sbom.cdx.dsse.json; envelope=true returns that envelope as stored.",
	}, func(ctx context.Context, in *sbomIn) (*provenanceOut, error) {
		f, err := sbom.ParseFormat("format", in.Format)
		if err != nil {
			return nil, err
		}
		pt := sign.PredicateSPDX
		if f == sbom.FormatCycloneDX {
			pt = sign.PredicateCycloneDX
		}
		v, err := reg.FindVersion(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number})
		if err != nil {
			return nil, err
		}
		a, err := reg.Attachment(ctx, v.Ref(), sign.SBOMAttachment(pt))
		if kiln.ErrorCode(err) == kiln.ENOTFOUND {
			return nil, kiln.Errorf(kiln.ENOTFOUND, "%s has no stored %s SBOM (it was recorded before kiln wrote SBOMs, or not built by kiln); make one from its stored package manifest on the server with `kiln version sbom %s --format %s --generate`", v.Name, f, v.Name, f)
		}
		if err != nil {
			return nil, err
		}
		if in.Envelope {
			return &provenanceOut{ContentType: a.MediaType, Body: a.Data}, nil
		}
		if s.cfg.SigningKey == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this server has no signing key to verify the SBOM of %s with; ask for envelope=true and verify it yourself", v.Name)
		}
		_, doc, err := sign.VerifySBOM(s.cfg.SigningKey, a.Data, v)
		if err != nil {
			return nil, err
		}
		return &provenanceOut{ContentType: f.MediaType(), Body: doc}, nil
	})
}

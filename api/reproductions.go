package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type reproductionsIn struct {
	Image  string `path:"image" maxLength:"63" example:"basic-linux"`
	Number int    `path:"number" minimum:"1" example:"4"`
}

type reproductionsOut struct {
	Body struct {
		Version kiln.VersionRef `json:"version"`
		// Checkable says whether the version can be rebuilt from its
		// provenance: it records the SOURCE_DATE_EPOCH of its bake.
		Checkable bool `json:"checkable" doc:"whether the version's provenance records the SOURCE_DATE_EPOCH a rebuild needs (versions built before reproducible bakes do not)"`
		// Reproduced is the newest check's result: identical, different,
		// or unchecked.
		Reproduced    string               `json:"reproduced" enum:"identical,different,unchecked" doc:"the newest check's result"`
		Reproductions []*kiln.Reproduction `json:"reproductions" doc:"the rebuild checks, newest first: who ran each and when, identical or not, the rebuilt digest, how many files differ and the first 100 of them with what differs and the step that wrote each; a signed check names the attachment keeping its in-toto statement (attestation, predicate type https://kiln.dev/reproduction/v1)"`
	}
}

// registerReproductions serves the rebuild checks of a version (`kiln
// version rebuild IMAGE-N --check`). A rebuild bakes on the machine that
// runs it, from the estate checked out at the version's commit; the
// server does not run rebuilds, so there is no route to start one.
func (s *Server) registerReproductions() {
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-version-reproductions", Method: http.MethodGet, Path: "/api/v1/images/{image}/versions/{number}/reproductions",
		Summary: "A version's rebuild checks: bit for bit identical or not, and the files that differ", Tags: []string{"versions"},
		Description: "Each `kiln version rebuild IMAGE-N --check` rebuilds the version from its recorded provenance and records whether the artifact " +
			"came out bit for bit the same; a different one keeps the differing files (path, what differs, the step that wrote it). " +
			"Rebuilds run where the estate is checked out (`kiln version rebuild`), not through the API.",
	}, func(ctx context.Context, in *reproductionsIn) (*reproductionsOut, error) {
		if s.cfg.Reproductions == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this server keeps no rebuild checks; ask the kiln whose database has them")
		}
		ref := kiln.VersionRef{Image: in.Image, Number: in.Number}
		v, err := s.cfg.Registry.FindVersion(ctx, ref)
		if err != nil {
			return nil, err
		}
		rs, err := s.cfg.Reproductions.ListReproductions(ctx, ref)
		if err != nil {
			return nil, err
		}
		out := &reproductionsOut{}
		out.Body.Version = v.Ref()
		out.Body.Checkable = v.Provenance.SourceDateEpoch != 0
		out.Body.Reproductions = nonNil(rs)
		out.Body.Reproduced = "unchecked"
		if len(rs) > 0 {
			out.Body.Reproduced = "different"
			if rs[0].Identical {
				out.Body.Reproduced = "identical"
			}
		}
		return out, nil
	})
}

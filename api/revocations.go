package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type revokeIn struct {
	Image  string `path:"image" maxLength:"63" example:"basic-linux"`
	Number int    `path:"number" minimum:"1" example:"2"`
	Body   struct {
		Reason string     `json:"reason" minLength:"1" maxLength:"1024" doc:"why the version must not be used; shown to everyone refused it" example:"CVE-2026-1234 in the kernel headers"`
		At     *time.Time `json:"at,omitempty" doc:"revoke at this time instead of now (RFC 3339, in the future); the server applies it when the time comes, as the caller. Scheduling a version again moves its time."`
	}
}

type revokeOut struct {
	Body struct {
		// Revocations are the versions revoked now: the version itself
		// first, then every version revoked through it (built on it).
		Revocations []*kiln.Revocation `json:"revocations" doc:"the version itself first, then each version revoked through it (through names the ancestor); empty when scheduled"`
		// Scheduled is the revocation recorded for later, with at.
		Scheduled *kiln.ScheduledRevocation `json:"scheduled,omitempty" doc:"the revocation scheduled, when at was given"`
	}
}

type restoreIn struct {
	Image  string `path:"image" maxLength:"63" example:"basic-linux"`
	Number int    `path:"number" minimum:"1" example:"2"`
	Body   struct {
		Reason string `json:"reason" minLength:"1" maxLength:"1024" doc:"why the version may be used again" example:"false positive: the kernel headers are not shipped"`
	}
}

type restoreOut struct {
	Body struct {
		Restored []kiln.VersionRef `json:"restored" doc:"the version and the versions revoked through it that are no longer revoked (a version still revoked through another ancestor stays revoked)"`
	}
}

type scheduledOut struct {
	Body struct {
		Scheduled []*kiln.ScheduledRevocation `json:"scheduled"`
	}
}

type cancelRevocationOut struct{}

// registerRevocations serves revocation through ancestry: revoke (now or
// at a time), restore, and the scheduled revocations. The Revoker audits
// each change with the caller as actor.
func (s *Server) registerRevocations() {
	revoker := func() (kiln.Revoker, error) {
		if s.cfg.Revoker == nil {
			return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this server keeps no revocations; revoke versions where the kiln database is")
		}
		return s.cfg.Revoker, nil
	}
	register(s, RoleOperator, huma.Operation{
		OperationID: "revoke-version", Method: http.MethodPost, Path: "/api/v1/images/{image}/versions/{number}/revoke",
		Summary: "Revoke a version and every version built on it, now or at a given time", Tags: []string{"versions"},
		Description: "Revokes a released version (ready or deprecated) and, in the same transaction, every version built on it " +
			"(its base or parent, transitively), each recorded with the revoked ancestor it was revoked through, the reason and the caller. " +
			"Launches and rollouts of a revoked version are refused; channels fall back to their newest version that is not revoked. " +
			"With at, the revocation is scheduled instead (`kiln serve` applies it when due; cancel it with DELETE on the same path).",
	}, func(ctx context.Context, in *revokeIn) (*revokeOut, error) {
		r, err := revoker()
		if err != nil {
			return nil, err
		}
		ref := kiln.VersionRef{Image: in.Image, Number: in.Number}
		out := &revokeOut{}
		out.Body.Revocations = []*kiln.Revocation{}
		if in.Body.At != nil {
			sr, err := r.ScheduleRevocation(ctx, ref, *in.Body.At, in.Body.Reason)
			if err != nil {
				return nil, bodyField(err, "")
			}
			out.Body.Scheduled = sr
			return out, nil
		}
		revs, err := r.Revoke(ctx, ref, in.Body.Reason)
		if err != nil {
			return nil, bodyField(err, "")
		}
		out.Body.Revocations = nonNil(revs)
		return out, nil
	})

	register(s, RoleOperator, huma.Operation{
		OperationID: "restore-version", Method: http.MethodPost, Path: "/api/v1/images/{image}/versions/{number}/restore",
		Summary: "Undo a version's revocation and the revocations it caused", Tags: []string{"versions"},
		Description: "Returns the version (revoked itself, not through an ancestor) and the versions revoked through it to their previous status, " +
			"except versions still revoked through another ancestor.",
	}, func(ctx context.Context, in *restoreIn) (*restoreOut, error) {
		r, err := revoker()
		if err != nil {
			return nil, err
		}
		refs, err := r.Restore(ctx, kiln.VersionRef{Image: in.Image, Number: in.Number}, in.Body.Reason)
		if err != nil {
			return nil, bodyField(err, "")
		}
		out := &restoreOut{}
		out.Body.Restored = nonNil(refs)
		return out, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "list-scheduled-revocations", Method: http.MethodGet, Path: "/api/v1/revocations",
		Summary: "Scheduled revocations, soonest first", Tags: []string{"versions"},
	}, func(ctx context.Context, _ *struct{}) (*scheduledOut, error) {
		r, err := revoker()
		if err != nil {
			return nil, err
		}
		ss, err := r.ScheduledRevocations(ctx)
		if err != nil {
			return nil, err
		}
		out := &scheduledOut{}
		out.Body.Scheduled = nonNil(ss)
		return out, nil
	})

	register(s, RoleOperator, huma.Operation{
		OperationID: "cancel-scheduled-revocation", Method: http.MethodDelete, Path: "/api/v1/images/{image}/versions/{number}/revoke",
		Summary: "Cancel a version's scheduled revocation", Tags: []string{"versions"},
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *versionPath) (*cancelRevocationOut, error) {
		r, err := revoker()
		if err != nil {
			return nil, err
		}
		return &cancelRevocationOut{}, r.CancelScheduledRevocation(ctx, in.ref())
	})
}

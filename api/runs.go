package api

import (
	"context"
	"net/http"
	"slices"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type runOut struct{ Body *kiln.Run }

type runPath struct {
	ID int64 `path:"id" minimum:"1" example:"12"`
}

type runListIn struct {
	Image  string   `query:"image" maxLength:"63"`
	Status []string `query:"status" doc:"keep runs with any of these statuses (comma-separated)"`
	Limit  int      `query:"limit" minimum:"0" maximum:"1000" default:"50"`
	Offset int      `query:"offset" minimum:"0"`
}

type runListOut struct {
	Body struct {
		Runs  []*kiln.Run `json:"runs"`
		Total int         `json:"total"`
	}
}

type runLogsIn struct {
	ID    int64 `path:"id" minimum:"1"`
	After int64 `query:"after" minimum:"0" doc:"return chunks after this seq (for following a run)"`
	Limit int   `query:"limit" minimum:"0" maximum:"10000" default:"1000"`
}

type runLogsOut struct {
	Body struct {
		Logs []*kiln.RunLog `json:"logs"`
	}
}

type approveIn struct {
	ID    int64  `path:"id" minimum:"1"`
	Stage string `path:"stage" maxLength:"64" example:"prod"`
}

type channelPath struct {
	Image       string `path:"image" maxLength:"63" example:"appserver"`
	Environment string `path:"environment" maxLength:"32" example:"prod"`
}

type channelOut struct {
	Body struct {
		Channel *kiln.Channel `json:"channel"`
		Version *kiln.Version `json:"version"`
	}
}

type channelsIn struct {
	Image string `query:"image" maxLength:"63"`
}

type channelsOut struct {
	Body struct {
		Channels []*kiln.Channel `json:"channels"`
	}
}

type promoteIn struct {
	Image       string `path:"image" maxLength:"63"`
	Environment string `path:"environment" maxLength:"32"`
	Body        struct {
		Number int `json:"number" minimum:"1" doc:"the version to promote"`
		// After overrides the environment the version must have been in
		// before; default: the one before in dev, staging, prod.
		After  *string `json:"after,omitempty" maxLength:"32" doc:"environment the version must have been promoted to first (default: the previous of dev, staging, prod; empty string: none)"`
		Reason string  `json:"reason,omitempty" maxLength:"1024"`
	}
}

type rollbackIn struct {
	Image       string `path:"image" maxLength:"63"`
	Environment string `path:"environment" maxLength:"32"`
	Body        struct {
		Reason string `json:"reason,omitempty" maxLength:"1024"`
		Force  bool   `json:"force,omitempty" doc:"roll back even onto a revoked version (audited as channel.rollback.forced); without it such a rollback is refused (409) naming the revocation and the next version back that is not revoked"`
	}
}

type promotionOut struct{ Body *kiln.Promotion }

type promotionsIn struct {
	Image       string `query:"image" doc:"only this image"`
	Environment string `query:"env" doc:"only this environment"`
	Limit       int    `query:"limit" minimum:"0" maximum:"10000" default:"100" doc:"at most this many (0: 100)"`
}

type promotionsOut struct {
	Body struct {
		Promotions []*kiln.Promotion `json:"promotions"`
	}
}

type statusOut struct {
	Body struct {
		Images any `json:"images"`
	}
}

func (s *Server) registerRuns() {
	runs, chans := s.cfg.Runs, s.cfg.Channels
	if runs != nil {
		s.registerRunOps(runs)
	}
	if s.cfg.StartRuns != nil {
		s.registerStartRuns(s.cfg.StartRuns)
	}
	if chans != nil {
		s.registerChannelOps(chans)
	}
	if s.cfg.Status != nil {
		register(s, RoleViewer, huma.Operation{
			OperationID: "status", Method: http.MethodGet, Path: "/api/v1/status",
			Summary: "For every image of the estates kiln runs: up to date or not, and which input changed", Tags: []string{"pipeline"},
		}, func(ctx context.Context, _ *struct{}) (*statusOut, error) {
			st, err := s.cfg.Status(ctx)
			if err != nil {
				return nil, err
			}
			out := &statusOut{}
			out.Body.Images = st
			return out, nil
		})
	}
}

func (s *Server) registerRunOps(runs kiln.RunStore) {
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-runs", Method: http.MethodGet, Path: "/api/v1/runs",
		Summary: "Pipeline runs, newest first", Tags: []string{"pipeline"},
	}, func(ctx context.Context, in *runListIn) (*runListOut, error) {
		f := kiln.RunFilter{Image: in.Image, Limit: in.Limit, Offset: in.Offset}
		for _, st := range in.Status {
			f.Status = append(f.Status, kiln.RunStatus(st))
		}
		rs, total, err := runs.ListRuns(ctx, f)
		if err != nil {
			return nil, err
		}
		out := &runListOut{}
		out.Body.Runs, out.Body.Total = rs, total
		return out, nil
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-run", Method: http.MethodGet, Path: "/api/v1/runs/{id}",
		Summary: "A run: trigger, status, stages with timings, the version it made", Tags: []string{"pipeline"},
	}, func(ctx context.Context, in *runPath) (*runOut, error) {
		r, err := runs.FindRun(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &runOut{Body: r}, nil
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "run-logs", Method: http.MethodGet, Path: "/api/v1/runs/{id}/logs",
		Summary: "A run's log chunks after a sequence number", Tags: []string{"pipeline"},
	}, func(ctx context.Context, in *runLogsIn) (*runLogsOut, error) {
		ls, err := runs.RunLogs(ctx, in.ID, in.After, in.Limit)
		if err != nil {
			return nil, err
		}
		out := &runLogsOut{}
		out.Body.Logs = ls
		return out, nil
	})
	register(s, RoleBuilder, huma.Operation{
		OperationID: "retry-run", Method: http.MethodPost, Path: "/api/v1/runs/{id}/retry",
		Summary: "Queue a failed or interrupted run again, from the stage that did not pass", Tags: []string{"pipeline"},
	}, func(ctx context.Context, in *runPath) (*runOut, error) {
		r, err := runs.RetryRun(ctx, in.ID, "retried by "+kiln.ActorFrom(ctx))
		if err != nil {
			return nil, err
		}
		return &runOut{Body: r}, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "cancel-run", Method: http.MethodPost, Path: "/api/v1/runs/{id}/cancel",
		Summary: "Cancel a queued run, or one waiting for an approval", Tags: []string{"pipeline"},
	}, func(ctx context.Context, in *runPath) (*runOut, error) {
		r, err := runs.CancelRun(ctx, in.ID, "cancelled by "+kiln.ActorFrom(ctx))
		if err != nil {
			return nil, err
		}
		return &runOut{Body: r}, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "approve-stage", Method: http.MethodPost, Path: "/api/v1/runs/{id}/stages/{stage}/approve",
		Summary: "Approve a delivery stage waiting for an approval", Tags: []string{"pipeline"},
	}, func(ctx context.Context, in *approveIn) (*runOut, error) {
		r, err := runs.ApproveStage(ctx, in.ID, in.Stage)
		if err != nil {
			return nil, err
		}
		return &runOut{Body: r}, nil
	})
}

func (s *Server) registerChannelOps(chans kiln.ChannelStore) {
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-channels", Method: http.MethodGet, Path: "/api/v1/channels",
		Summary: "Which version each environment uses, per image", Tags: []string{"channels"},
	}, func(ctx context.Context, in *channelsIn) (*channelsOut, error) {
		cs, err := chans.Channels(ctx, in.Image)
		if err != nil {
			return nil, err
		}
		out := &channelsOut{}
		out.Body.Channels = cs
		return out, nil
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "get-channel", Method: http.MethodGet, Path: "/api/v1/images/{image}/channels/{environment}",
		Summary: "The version in an environment's channel (\"the version in prod of appserver\")", Tags: []string{"channels"},
	}, func(ctx context.Context, in *channelPath) (*channelOut, error) {
		c, err := chans.FindChannel(ctx, in.Image, in.Environment)
		if err != nil {
			return nil, err
		}
		v, err := s.cfg.Registry.FindVersion(ctx, c.Version)
		if err != nil {
			return nil, err
		}
		out := &channelOut{}
		out.Body.Channel, out.Body.Version = c, v
		return out, nil
	})
	register(s, RoleViewer, huma.Operation{
		OperationID: "list-promotions", Method: http.MethodGet, Path: "/api/v1/promotions",
		Summary: "Recorded promotions and rollbacks, newest first", Tags: []string{"channels"},
	}, func(ctx context.Context, in *promotionsIn) (*promotionsOut, error) {
		ps, err := chans.Promotions(ctx, in.Image, in.Environment, in.Limit)
		if err != nil {
			return nil, err
		}
		out := &promotionsOut{}
		out.Body.Promotions = nonNil(ps)
		return out, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "promote", Method: http.MethodPost, Path: "/api/v1/images/{image}/channels/{environment}",
		Summary: "Promote a ready version to an environment (it must have been in the previous one)", Tags: []string{"channels"},
	}, func(ctx context.Context, in *promoteIn) (*promotionOut, error) {
		prev := ""
		if in.Body.After != nil {
			prev = *in.Body.After
		} else if i := slices.Index(kiln.DefaultEnvironments, in.Environment); i > 0 {
			prev = kiln.DefaultEnvironments[i-1]
		}
		p, err := chans.Promote(ctx, kiln.VersionRef{Image: in.Image, Number: in.Body.Number}, in.Environment, prev, in.Body.Reason)
		if err != nil {
			return nil, err
		}
		return &promotionOut{Body: p}, nil
	})
	register(s, RoleOperator, huma.Operation{
		OperationID: "rollback", Method: http.MethodPost, Path: "/api/v1/images/{image}/channels/{environment}/rollback",
		Summary: "Point an environment back at the version it had before its latest promotion", Tags: []string{"channels"},
		Description: "A rollback that would land on a revoked version is refused (409) with the revocation (who, why, when) and the next version back " +
			"in the channel's history that is not revoked, unless force is set; a forced one is audited (channel.rollback.forced).",
	}, func(ctx context.Context, in *rollbackIn) (*promotionOut, error) {
		p, err := chans.Rollback(ctx, in.Image, in.Environment, in.Body.Reason, in.Body.Force)
		if err != nil {
			return nil, err
		}
		return &promotionOut{Body: p}, nil
	})
}

type startRunsIn struct {
	Body struct {
		Estate string            `json:"estate" minLength:"1" maxLength:"4096" doc:"name of an estate registered on the server (kiln estate add), or its directory"`
		Images []string          `json:"images,omitempty" maxItems:"100"`
		All    bool              `json:"all,omitempty"`
		Force  bool              `json:"force,omitempty"`
		Vars   map[string]string `json:"vars,omitempty"`
		// Trigger is why, kept in each run's trigger.
		Trigger string `json:"trigger,omitempty" maxLength:"1024" doc:"why the runs start (e.g. refresh: DSA-5000-1), recorded in each run's trigger before who asked"`
	}
}

type startRunsOut struct {
	Body struct {
		Runs []*kiln.Run `json:"runs"`
	}
}

func (s *Server) registerStartRuns(st kiln.RunStarter) {
	register(s, RoleBuilder, huma.Operation{
		OperationID: "start-runs", Method: http.MethodPost, Path: "/api/v1/runs",
		Summary: "Queue pipeline runs of an estate's images (on the server) for its worker", Tags: []string{"pipeline"},
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *startRunsIn) (*startRunsOut, error) {
		b := in.Body
		if b.All == (len(b.Images) > 0) {
			return nil, kiln.FieldErrorf(kiln.EINVALID, "body.images", "give image names or all=true, not both and not neither")
		}
		req := kiln.RunRequest{Estate: b.Estate, Images: b.Images, All: b.All, Force: b.Force, Vars: b.Vars, Trigger: b.Trigger}
		if tok, ok := TokenFrom(ctx); ok {
			req.Role = tok.Role
		}
		runs, err := st.StartRuns(ctx, req)
		if err != nil {
			return nil, bodyField(err, "")
		}
		out := &startRunsOut{}
		out.Body.Runs = nonNil(runs)
		return out, nil
	})
}

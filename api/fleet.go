package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/advisory"
	"github.com/kiln-project/kiln/fleet"
)

// CheckinRecorder records one check-in; fleet.Batcher groups concurrent
// ones into shared transactions.
type CheckinRecorder interface {
	CheckIn(ctx context.Context, c *kiln.Checkin) (*kiln.CheckinResult, error)
}

// checkinIn is the check-in body, decoded once (see rawJSON): check-ins
// are the route every server of the fleet calls.
type checkinIn = rawJSON

// checkIn decodes a check-in body strictly and records it.
func checkIn(ctx context.Context, rec CheckinRecorder, in *checkinIn) (*checkinOut, error) {
	var c kiln.Checkin
	if err := decodeCheckin(in.RawBody, &c); err != nil {
		return nil, err
	}
	// The instance is bound to the agent token that first checks it in.
	if tok, ok := TokenFrom(ctx); ok && tok.Role == kiln.RoleAgent {
		c.Agent = TokenActor(tok)
	}
	res, err := rec.CheckIn(ctx, &c)
	if err != nil {
		return nil, bodyField(err, "")
	}
	return &checkinOut{Body: checkinBody{res}}, nil
}

type checkinOut struct{ Body checkinBody }

type instancesIn struct {
	Image       string   `query:"image" maxLength:"63"`
	Version     int      `query:"version" minimum:"0" doc:"with image: only this version"`
	Environment string   `query:"env"`
	State       []string `query:"state" doc:"keep instances in any of these states (comma-separated); default all but destroyed"`
	Limit       int      `query:"limit" minimum:"0" maximum:"10000" default:"100"`
	Offset      int      `query:"offset" minimum:"0"`
}

type instancesOut struct {
	Body struct {
		Instances []*kiln.Instance `json:"instances"`
		Total     int              `json:"total" doc:"matches ignoring limit and offset"`
	}
}

type instanceIn struct {
	ID string `path:"id" maxLength:"128"`
}

type instanceOut struct{ Body *kiln.Instance }

type registerIn struct {
	AllowUnknown bool `query:"allow_unknown" doc:"keep instances of versions the registry does not know, flagged in reports"`
	Body         struct {
		Instances []*kiln.Instance `json:"instances" minItems:"1" maxItems:"5000"`
	}
}

type envIn struct {
	Environment string `query:"env" doc:"only this environment"`
}

type reportOut struct{ Body *kiln.Report }

type exposedIn struct {
	Environment string   `query:"env"`
	FixedIn     []string `query:"fixed_in" doc:"first fixed versions, IMAGE-N (comma-separated)"`
	Advisory    string   `query:"advisory" doc:"a stored advisory's id, instead of fixed_in"`
}

type exposureOut struct{ Body *kiln.Exposure }

type overageIn struct {
	Environment string `query:"env"`
	MaxAge      string `query:"max_age" doc:"age limit such as 90d; default: each environment's policy" example:"90d"`
}

type overageOut struct{ Body *kiln.Overage }

type staleOut struct{ Body *kiln.Stale }

type advisoriesIn struct {
	Source  string `query:"source" enum:"osv,debian-tracker,manual,"`
	FixedIn bool   `query:"fixed_in" doc:"only image-level advisories"`
	Package string `query:"package" doc:"only advisories naming this source package"`
	Limit   int    `query:"limit" minimum:"0" maximum:"10000" default:"100"`
	Offset  int    `query:"offset" minimum:"0"`
}

type advisoriesOut struct {
	Body struct {
		Advisories []*kiln.Advisory `json:"advisories"`
		Total      int              `json:"total"`
	}
}

type advisoryIn struct {
	ID string `path:"id" maxLength:"256"`
}

type advisoryOut struct{ Body *kiln.Advisory }

type advisoryPutIn struct {
	Body struct {
		Advisories []*kiln.Advisory `json:"advisories" minItems:"1" maxItems:"1000"`
	}
}

type advisoryPutOut struct {
	Body struct {
		Created int `json:"created"`
		Total   int `json:"total"`
	}
}

type usageIn struct {
	Image       string `query:"image" maxLength:"63" doc:"only this image"`
	Environment string `query:"env" doc:"only this environment"`
}

type usageOut struct {
	Body struct {
		Usage []*kiln.Usage `json:"usage"`
	}
}

type manifestsIn struct {
	Source []string `query:"source" maxItems:"1000" doc:"source (or binary) package names, comma-separated; none: every version without packages"`
}

type manifestsOut struct {
	Body struct {
		Manifests []*kiln.PackageManifest `json:"manifests"`
	}
}

// registerFleet adds the inventory, check-in, fleet report and advisory
// operations when the configuration provides their stores.
func (s *Server) registerFleet() {
	if s.cfg.Inventory == nil || s.cfg.Fleet == nil || s.cfg.Advisories == nil {
		return
	}
	fl := fleet.New(s.cfg.Fleet, s.cfg.Advisories)
	fl.Channels = s.cfg.Channels
	checkins := s.cfg.Checkins
	if checkins == nil {
		checkins = singleCheckin{s.cfg.Fleet}
	}
	s.registerMetrics(fl)

	register(s, RoleAgent, huma.Operation{
		OperationID: "instance-checkin", Method: http.MethodPost, Path: fleet.CheckinPath,
		Summary:     "A server reports its image version (from /etc/kiln-release); upserts the instance by id",
		Tags:        []string{"instances"},
		RequestBody: jsonBody[kiln.Checkin](s), SkipValidateBody: true, // checkIn decodes it strictly, once
	}, func(ctx context.Context, in *checkinIn) (*checkinOut, error) {
		return checkIn(ctx, checkins, in)
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "list-instances", Method: http.MethodGet, Path: "/api/v1/instances",
		Summary: "List instances (the drill-down of a fleet report row)", Tags: []string{"instances"},
	}, func(ctx context.Context, in *instancesIn) (*instancesOut, error) {
		f := kiln.InstanceFilter{Image: in.Image, Environment: in.Environment, Limit: in.Limit, Offset: in.Offset}
		if in.Version > 0 {
			if in.Image == "" {
				return nil, kiln.FieldErrorf(kiln.EINVALID, "query.version", "version needs image; give both, e.g. image=appserver&version=3")
			}
			f.Version = &kiln.VersionRef{Image: in.Image, Number: in.Version}
		}
		for _, st := range in.State {
			p, err := kiln.ParseInstanceState("query.state", st)
			if err != nil {
				return nil, err
			}
			f.States = append(f.States, p)
		}
		is, total, err := s.cfg.Inventory.ListInstances(ctx, f)
		if err != nil {
			return nil, err
		}
		out := &instancesOut{}
		out.Body.Instances, out.Body.Total = nonNil(is), total
		return out, nil
	})

	register(s, RoleOperator, huma.Operation{
		OperationID: "register-instances", Method: http.MethodPost, Path: "/api/v1/instances",
		Summary: "Register instances launched elsewhere, all or none", Tags: []string{"instances"},
		DefaultStatus: http.StatusCreated, Errors: []int{http.StatusNotFound}, // names a version / an image
	}, func(ctx context.Context, in *registerIn) (*instancesOut, error) {
		if err := s.cfg.Fleet.RegisterInstances(ctx, in.Body.Instances, kiln.RegisterOptions{AllowUnknown: in.AllowUnknown}); err != nil {
			return nil, bodyField(err, "")
		}
		out := &instancesOut{}
		out.Body.Instances, out.Body.Total = in.Body.Instances, len(in.Body.Instances)
		return out, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "get-instance", Method: http.MethodGet, Path: "/api/v1/instances/{id}",
		Summary: "One instance, by id or name", Tags: []string{"instances"},
	}, func(ctx context.Context, in *instanceIn) (*instanceOut, error) {
		inst, err := s.cfg.Inventory.FindInstance(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &instanceOut{Body: inst}, nil
	})

	register(s, RoleOperator, huma.Operation{
		OperationID: "deregister-instance", Method: http.MethodDelete, Path: "/api/v1/instances/{id}",
		Summary: "Remove an instance record", Tags: []string{"instances"}, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *instanceIn) (*struct{}, error) {
		return nil, s.cfg.Inventory.DeleteInstance(ctx, in.ID)
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "fleet-report", Method: http.MethodGet, Path: "/api/v1/fleet/report",
		Summary: "One row per image version in use with its instance count, sorted by image then version", Tags: []string{"fleet"},
	}, func(ctx context.Context, in *envIn) (*reportOut, error) {
		rep, err := fl.Report(ctx, in.Environment)
		if err != nil {
			return nil, err
		}
		return &reportOut{Body: rep}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "fleet-exposed", Method: http.MethodGet, Path: "/api/v1/fleet/exposed",
		Summary: "Instances to rebuild for a fixed-in statement or a stored advisory", Tags: []string{"fleet"},
	}, func(ctx context.Context, in *exposedIn) (*exposureOut, error) {
		var e *kiln.Exposure
		var err error
		switch {
		case in.Advisory != "" && len(in.FixedIn) > 0:
			return nil, kiln.FieldErrorf(kiln.EINVALID, "query.advisory", "give either advisory or fixed_in, not both")
		case in.Advisory != "":
			e, err = fl.ExposedTo(ctx, in.Advisory, in.Environment)
		default:
			var fixed []kiln.VersionRef
			if fixed, err = advisory.ParseFixedIn("query.fixed_in", in.FixedIn...); err != nil {
				return nil, err
			}
			e, err = fl.ExposedFixedIn(ctx, fixed, in.Environment)
		}
		if err != nil {
			return nil, err
		}
		return &exposureOut{Body: e}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "fleet-overage", Method: http.MethodGet, Path: "/api/v1/fleet/overage",
		Summary: "Instances whose image version was built longer ago than an age limit", Tags: []string{"fleet"},
	}, func(ctx context.Context, in *overageIn) (*overageOut, error) {
		var max kiln.Age
		if in.MaxAge != "" {
			var err error
			if max, err = kiln.ParseMaxAge("query.max_age", in.MaxAge); err != nil {
				return nil, err
			}
		}
		o, err := fl.Overage(ctx, max, in.Environment)
		if err != nil {
			return nil, err
		}
		return &overageOut{Body: o}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "fleet-stale", Method: http.MethodGet, Path: "/api/v1/fleet/stale",
		Summary: "Instances not on their image's latest ready version", Tags: []string{"fleet"},
	}, func(ctx context.Context, in *envIn) (*staleOut, error) {
		st, err := fl.Stale(ctx, in.Environment)
		if err != nil {
			return nil, err
		}
		return &staleOut{Body: st}, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "fleet-usage", Method: http.MethodGet, Path: "/api/v1/fleet/usage",
		Summary: "Instance counts per image version and environment (not destroyed), the rows every fleet report is computed from",
		Tags:    []string{"fleet"},
	}, func(ctx context.Context, in *usageIn) (*usageOut, error) {
		us, err := s.cfg.Fleet.Usage(ctx, kiln.UsageFilter{Image: in.Image, Environment: in.Environment})
		if err != nil {
			return nil, err
		}
		out := &usageOut{}
		out.Body.Usage = nonNil(us)
		return out, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "fleet-manifests", Method: http.MethodGet, Path: "/api/v1/fleet/manifests",
		Summary: "Every version in number order with the installed packages named (or built from) the given source packages",
		Tags:    []string{"fleet"},
	}, func(ctx context.Context, in *manifestsIn) (*manifestsOut, error) {
		ms, err := s.cfg.Fleet.Manifests(ctx, in.Source)
		if err != nil {
			return nil, err
		}
		out := &manifestsOut{}
		out.Body.Manifests = nonNil(ms)
		return out, nil
	})

	s.registerPolicies(s.cfg.Fleet)

	register(s, RoleViewer, huma.Operation{
		OperationID: "list-advisories", Method: http.MethodGet, Path: "/api/v1/advisories",
		Summary: "Stored advisories sorted by id, without package lists", Tags: []string{"advisories"},
	}, func(ctx context.Context, in *advisoriesIn) (*advisoriesOut, error) {
		as, total, err := s.cfg.Advisories.ListAdvisories(ctx, kiln.AdvisoryFilter{Source: kiln.AdvisorySource(in.Source),
			FixedIn: in.FixedIn, Package: in.Package, Limit: in.Limit, Offset: in.Offset})
		if err != nil {
			return nil, err
		}
		out := &advisoriesOut{}
		out.Body.Advisories, out.Body.Total = nonNil(as), total
		return out, nil
	})

	register(s, RoleViewer, huma.Operation{
		OperationID: "get-advisory", Method: http.MethodGet, Path: "/api/v1/advisories/{id}",
		Summary: "One advisory, whole", Tags: []string{"advisories"},
	}, func(ctx context.Context, in *advisoryIn) (*advisoryOut, error) {
		a, err := s.cfg.Advisories.FindAdvisory(ctx, in.ID)
		if err != nil {
			return nil, err
		}
		return &advisoryOut{Body: a}, nil
	})

	register(s, RoleOperator, huma.Operation{
		OperationID: "put-advisories", Method: http.MethodPost, Path: "/api/v1/advisories",
		Summary: "Record advisories; an id already stored is replaced (idempotent)", Tags: []string{"advisories"},
	}, func(ctx context.Context, in *advisoryPutIn) (*advisoryPutOut, error) {
		n, err := s.cfg.Advisories.PutAdvisories(ctx, in.Body.Advisories)
		if err != nil {
			return nil, bodyField(err, "")
		}
		out := &advisoryPutOut{}
		out.Body.Created, out.Body.Total = n, len(in.Body.Advisories)
		return out, nil
	})

	// Operator, as for recording advisories: whoever may replace an
	// advisory (put is an upsert by id) may as well remove it.
	register(s, RoleOperator, huma.Operation{
		OperationID: "delete-advisory", Method: http.MethodDelete, Path: "/api/v1/advisories/{id}",
		Summary: "Remove a stored advisory", Tags: []string{"advisories"}, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *advisoryIn) (*struct{}, error) {
		return nil, s.cfg.Advisories.DeleteAdvisory(ctx, in.ID)
	})
}

// singleCheckin records each check-in in its own transaction.
type singleCheckin struct{ fl kiln.Fleet }

func (c singleCheckin) CheckIn(ctx context.Context, ci *kiln.Checkin) (*kiln.CheckinResult, error) {
	rs, err := c.fl.CheckIn(ctx, []*kiln.Checkin{ci})
	if err != nil {
		return nil, err
	}
	if rs[0].Refused != nil {
		return nil, rs[0].Refused
	}
	return rs[0], nil
}

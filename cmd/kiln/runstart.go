package main

import (
	"context"
	"strings"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/pipeline"
)

// runStarter queues runs for `kiln serve`'s worker when the API is asked
// (POST /api/v1/runs, the remote `kiln run`). Runs start only from
// estates an admin registered (`kiln estate add NAME DIR`), named by NAME
// (or by DIR); the definition loader keeps every file it reads inside
// the directory. A pipeline that delivers without approval needs the
// operator role, and the worker acts as the token that asked.
type runStarter struct {
	runs    kiln.RunStore
	estates kiln.EstateStore
}

var _ kiln.RunStarter = runStarter{}

func (s runStarter) StartRuns(ctx context.Context, req kiln.RunRequest) ([]*kiln.Run, error) {
	dir, err := s.estateDir(ctx, req.Estate)
	if err != nil {
		return nil, err
	}
	est, err := cli.LoadEstate(dir, req.Vars)
	if err != nil {
		return nil, err
	}
	var names []string
	if !req.All {
		names = req.Images
	}
	if img, env := pipeline.AutoDelivery(est, names); img != "" && !req.Role.Allows(kiln.RoleOperator) {
		return nil, kiln.FieldErrorf(kiln.EFORBIDDEN, "estate", "the pipeline of %s delivers to %s without approval (gate = \"auto\"), so starting it needs the operator role (allowed: operator, admin); this token has role %s",
			img, env, roleName(req.Role))
	}
	actor := kiln.ActorFrom(ctx)
	trigger := "api by " + actor
	if req.Trigger != "" {
		trigger = req.Trigger + " (" + trigger + ")"
	}
	return pipeline.EnqueueFor(ctx, s.runs, est, req.Vars, names, trigger, req.Force, actor)
}

// estateDir resolves a request's estate: a registered estate's name, or
// the directory of one.
func (s runStarter) estateDir(ctx context.Context, estate string) (string, error) {
	if s.estates == nil {
		return "", kiln.Errorf(kiln.EUNAVAILABLE, "this server has no estate store; it starts no runs")
	}
	if !strings.Contains(estate, "/") {
		e, err := s.estates.FindEstate(ctx, estate)
		if err != nil {
			return "", kiln.FieldErrorf(kiln.ErrorCode(err), "estate", "%s", kiln.ErrorMessage(err))
		}
		return e.Dir, nil
	}
	if !strings.HasPrefix(estate, "/") {
		return "", kiln.FieldErrorf(kiln.EINVALID, "estate", "estate %q is neither a registered estate's name nor an absolute path; name an estate from `kiln estate list` on the server", estate)
	}
	es, err := s.estates.ListEstates(ctx)
	if err != nil {
		return "", err
	}
	for _, e := range es {
		if e.Dir == estate {
			return e.Dir, nil
		}
	}
	return "", kiln.FieldErrorf(kiln.EFORBIDDEN, "estate", "directory %s is not a registered estate; runs start only from estates an admin registered on the server: `kiln estate add NAME %s`, then ask for runs of NAME", estate, estate)
}

func roleName(r kiln.Role) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

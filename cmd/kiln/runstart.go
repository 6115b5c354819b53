package main

import (
	"context"
	"path/filepath"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/pipeline"
)

// runStarter queues runs for `kiln serve`'s worker when the API is asked
// (POST /api/v1/runs, the remote `kiln run`). The estate is a directory on
// this machine; the definition loader keeps every file it reads inside it.
type runStarter struct{ runs kiln.RunStore }

var _ kiln.RunStarter = runStarter{}

func (s runStarter) StartRuns(ctx context.Context, req kiln.RunRequest) ([]*kiln.Run, error) {
	if !filepath.IsAbs(req.Estate) {
		return nil, kiln.FieldErrorf(kiln.EINVALID, "estate", "estate %q is not an absolute path; give the estate's directory as the kiln server sees it, e.g. /srv/estates/web", req.Estate)
	}
	est, err := cli.LoadEstate(req.Estate, req.Vars)
	if err != nil {
		return nil, err
	}
	var names []string
	if !req.All {
		names = req.Images
	}
	return pipeline.Enqueue(ctx, s.runs, est, req.Vars, names, "api by "+kiln.ActorFrom(ctx), req.Force)
}

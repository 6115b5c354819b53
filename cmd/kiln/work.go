package main

import (
	"log/slog"
	"os/exec"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/cli"
	"github.com/kiln-project/kiln/pipeline"
)

// serveWork is what this kiln serve does besides the API: what --work
// names, refused when this machine cannot run instances and the work
// needs it; without --work, pipelines and rollouts when it can, and
// neither when it cannot.
func serveWork(w cli.ServeWork, g *graph) (cli.ServeWork, error) {
	can := g.noPlatform == nil
	if !w.Given {
		return cli.ServeWork{Pipelines: can, Rollouts: can}, nil
	}
	if (w.Pipelines || w.Rollouts) && !can {
		return w, kiln.FieldErrorf(kiln.EINVALID, "--work", "--work %s needs a platform on this machine, and it has none: %s; install what is named there, or give --work none for an API and dashboard server",
			w, kiln.ErrorMessage(g.noPlatform))
	}
	return w, nil
}

// logWork says at start, in one line, what this server does and does not
// do, and why when --work was not given and the machine decided.
func logWork(logger *slog.Logger, w cli.ServeWork, g *graph) {
	attrs := []any{"work", w.String()}
	switch {
	case w.Given:
		attrs = append(attrs, "from", "--work")
	case g.noPlatform != nil:
		attrs = append(attrs, "from", "this machine cannot run instances", "reason", kiln.ErrorMessage(g.noPlatform))
	default:
		attrs = append(attrs, "from", "this machine can run instances (no --work given)")
	}
	if w.Pipelines {
		attrs = append(attrs, "worker", pipeline.WorkerName())
	}
	logger.Info("kiln serve: this server "+w.Describe(), attrs...)
	if _, err := exec.LookPath("mmdebstrap"); w.Pipelines && err != nil {
		logger.Warn("kiln serve: mmdebstrap is not installed: this server's runs of images bootstrapped from a suite fail in their build stage (images from an origin build); install it (apt-get install mmdebstrap) or leave pipelines to a builder (--work rollouts)")
	}
}

package kiln

import "context"

// RunRequest asks for pipeline runs of an estate's images.
type RunRequest struct {
	// Estate is the estate directory on the machine that runs the
	// pipeline (the kiln server's, for a remote request).
	Estate string            `json:"estate"`
	Images []string          `json:"images,omitempty"`
	All    bool              `json:"all,omitempty"`
	Force  bool              `json:"force,omitempty"`
	Vars   map[string]string `json:"vars,omitempty"`
}

// RunStarter queues pipeline runs for the worker (kiln serve) to carry
// out: the API's way to start runs, and the remote CLI's.
type RunStarter interface {
	StartRuns(ctx context.Context, req RunRequest) ([]*Run, error)
}

package local

import (
	"bytes"
	"context"
	"strings"
	"time"

	"github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/internal/instancedir"
)

// State reports the instance's state: the supervisor's record, corrected by
// what is alive, and for a running instance what its systemd says now. An
// unknown instance is an error with code ENOTFOUND.
func (p *Platform) State(ctx context.Context, id string) (kiln.InstanceState, error) {
	rec, live, err := p.load(id)
	if err != nil {
		return "", err
	}
	return p.stateOf(ctx, rec, live), nil
}

// stateOf is State for a record already loaded.
func (p *Platform) stateOf(ctx context.Context, rec *record, live bool) kiln.InstanceState {
	switch {
	case rec.terminal():
		return rec.State
	case !live:
		// The supervisor is gone without writing an end: it was killed.
		return kiln.InstanceCrashed
	case rec.State != kiln.InstanceRunning:
		return rec.State
	case !instancedir.Alive(rec.LeaderPID, rec.LeaderStart):
		return kiln.InstanceCrashed // the supervisor is about to record it
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var out bytes.Buffer
	if _, err := p.Exec(ctx, rec.ID, []string{"systemctl", "is-system-running"}, kiln.ExecIO{Stdout: &out}); err == nil {
		switch strings.TrimSpace(out.String()) {
		case "degraded":
			return kiln.InstanceDegraded
		case "initializing", "starting":
			return kiln.InstanceStarting
		}
	}
	return kiln.InstanceRunning
}

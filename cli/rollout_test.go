package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// serverHost is a kiln server's rollout host as the client sees it: each
// poll answers the next of answers (the last one again when they run out),
// and onPoll runs before it.
type serverHost struct {
	mu      sync.Mutex
	answers []answer
	polls   int
	onPoll  func(n int)
}

type answer struct {
	p   *kiln.RolloutProgress
	err error
}

func (h *serverHost) StartRollout(_ context.Context, req kiln.RolloutRequest) (*kiln.Rollout, error) {
	return &kiln.Rollout{ID: 7, Service: req.Service, State: kiln.RolloutRunning}, nil
}

func (h *serverHost) RolloutProgress(context.Context, int64, int) (*kiln.RolloutProgress, error) {
	h.mu.Lock()
	n := h.polls
	h.polls++
	a := h.answers[min(n, len(h.answers)-1)]
	f := h.onPoll
	h.mu.Unlock()
	if f != nil {
		f(n)
	}
	return a.p, a.err
}

func (h *serverHost) StartFrontEnd(context.Context, string) error                   { return nil }
func (h *serverHost) StopFrontEnd(context.Context, string) error                    { return nil }
func (h *serverHost) FrontEndRunning(context.Context, string) (bool, error)         { return false, nil }
func (h *serverHost) RemoveService(context.Context, string, bool) ([]string, error) { return nil, nil }

func running(batch int, lines ...string) answer {
	return answer{p: &kiln.RolloutProgress{Rollout: &kiln.Rollout{ID: 7, Service: "web", State: kiln.RolloutRunning, Batch: batch},
		Lines: lines, Next: len(lines), Running: true}}
}

func follow(t *testing.T, ctx context.Context, h *serverHost) (*kiln.Rollout, error, string) {
	t.Helper()
	var errb bytes.Buffer
	cmd := &cobra.Command{}
	cmd.SetErr(&errb)
	r, err := (&App{}).roll(ctx, cmd, h, kiln.RolloutRequest{Service: "web"})
	return r, err, errb.String()
}

// Ctrl-C while following a rollout on the server stops the follow only: a
// user-level error (exit 1) names the rollout and says where to see it.
func TestRollFollowInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	h := &serverHost{answers: []answer{running(0, "--> batch 1")}, onPoll: func(n int) {
		if n == 1 {
			cancel()
		}
	}}
	_, err, _ := follow(t, ctx, h)
	if ExitCode(err) != ExitUser || !strings.Contains(err.Error(), "rollout 7 of web") ||
		!strings.Contains(err.Error(), "keeps running on the server") || !strings.Contains(err.Error(), "kiln service show web") {
		t.Fatalf("Ctrl-C: %v (exit %d); want exit 1 naming rollout 7, saying it keeps running and how to see it", err, ExitCode(err))
	}
}
